"""Gate-camera frames of ticket QR codes, made from the project's own QR renderer.

The benchmark, the tests and the demo need frames that look like what a
turnstile camera sees: a phone screen or a paper ticket held at an angle,
blurred, noisy, with glare and uneven light. Generating them from
``protocol.qr`` keeps the codes byte-for-byte what the sales system prints,
and a seeded generator makes every run see the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from protocol.qr import ticket_qr

QUIET_ZONE_MODULES = 4


@dataclass(frozen=True)
class FrameConditions:
    """How one synthetic frame is shot; every field has a plausible gate default."""

    width: int = 640
    height: int = 480
    code_fraction: float = 0.45  # side of the code (without quiet zone) over the frame height
    tilt_degrees: float = 15.0  # perspective tilt of the ticket away from the camera
    rotation_degrees: float = 0.0  # in-plane rotation
    centre: tuple[float, float] = (0.5, 0.5)  # where the code sits, as fractions of width and height
    phone_screen: bool = False  # a phone (dark bezel, bright screen) rather than paper
    dark_mode: bool = False  # light modules on a dark background (inverted code)
    blur_sigma: float = 0.7
    noise_sigma: float = 4.0
    glare: float = 0.0  # 0..1, strength of a bright reflection over the code
    uneven_light: float = 0.3  # 0..1, how much darker one side of the frame is


def code_image(text: str, module_px: int = 4, dark_mode: bool = False) -> np.ndarray:
    """The ticket QR as a grayscale image with its quiet zone, dark on light unless dark_mode."""
    matrix = np.array(ticket_qr(text).matrix, dtype=np.uint8)
    modules = np.pad(matrix, QUIET_ZONE_MODULES, constant_values=0)
    image = np.where(modules == 1, 20, 235).astype(np.uint8)
    if dark_mode:
        image = 255 - image
    return np.kron(image, np.ones((module_px, module_px), dtype=np.uint8))


def random_conditions(rng: np.random.Generator, width: int, height: int) -> FrameConditions:
    """A spread of conditions a gate meets in a day, from easy to hard but still readable."""
    phone = bool(rng.random() < 0.5)
    return FrameConditions(
        width=width,
        height=height,
        code_fraction=float(rng.uniform(0.3, 0.6)),
        tilt_degrees=float(rng.uniform(0.0, 35.0)),
        rotation_degrees=float(rng.uniform(-30.0, 30.0)),
        centre=(float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6))),
        phone_screen=phone,
        dark_mode=phone and bool(rng.random() < 0.3),
        blur_sigma=float(rng.uniform(0.0, 1.4)),
        noise_sigma=float(rng.uniform(1.0, 8.0)),
        glare=float(rng.uniform(0.3, 0.7)) if rng.random() < 0.4 else 0.0,
        uneven_light=float(rng.uniform(0.0, 0.5)),
    )


def camera_frame(text: str | None, conditions: FrameConditions, rng: np.random.Generator) -> np.ndarray:
    """A BGR frame as OpenCV delivers it; ``text=None`` gives a frame with no code in it."""
    height, width = conditions.height, conditions.width
    frame = _background(rng, width, height)
    if text is not None:
        _paste_ticket(frame, text, conditions)
    _light(frame, conditions, rng)
    if conditions.blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), conditions.blur_sigma)
    noisy = frame + rng.normal(0.0, conditions.noise_sigma, frame.shape).astype(np.float32)
    gray = np.clip(noisy, 0, 255).astype(np.uint8)
    tint = np.array([0.95, 1.0, 1.03], dtype=np.float32)  # a slightly warm camera
    return np.clip(gray[:, :, None] * tint, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Clutter as float32 gray: soft shapes (hands, clothes) plus hard edges and print (railings, signs).

    The hard edges matter for timing: a decoder's cost on a frame without a
    code is mostly spent rejecting edge patterns that might be finder patterns.
    """
    coarse = rng.uniform(50, 170, (max(2, height // 60), max(2, width // 60))).astype(np.float32)
    frame = np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
    for _ in range(12):
        start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(frame, start, end, int(rng.integers(20, 230)), int(rng.integers(2, 12)))
    for _ in range(4):
        origin = (int(rng.integers(0, width - 100)), int(rng.integers(20, height)))
        cv2.putText(frame, "POTALA GATE 3 EXIT", origin, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 1.5)), int(rng.integers(10, 240)), 2)
    return frame.astype(np.float32)


def _paste_ticket(frame: np.ndarray, text: str, conditions: FrameConditions) -> None:
    code = code_image(text, module_px=4, dark_mode=conditions.dark_mode).astype(np.float32)
    side = code.shape[0]
    if conditions.phone_screen:
        bezel = side // 8
        carrier = np.pad(code, bezel, constant_values=12.0)  # the phone's black frame around the screen
    else:
        carrier = np.pad(code, side // 10, constant_values=225.0)  # paper margin
    source_side = carrier.shape[0]
    quiet = QUIET_ZONE_MODULES * 4
    code_px = conditions.code_fraction * conditions.height
    scale = code_px / (side - 2 * quiet)
    target = _target_quad(source_side * scale, conditions)
    corners = np.array([[0, 0], [source_side, 0], [source_side, source_side], [0, source_side]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    size = (conditions.width, conditions.height)
    warped = cv2.warpPerspective(carrier, matrix, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones_like(carrier), matrix, size, flags=cv2.INTER_LINEAR)
    frame *= 1.0 - mask
    frame += warped * mask


def _target_quad(side: float, conditions: FrameConditions) -> np.ndarray:
    """Square of ``side`` pixels, tilted away (far edge shorter), rotated, placed at the centre."""
    half = side / 2.0
    shrink = np.cos(np.radians(conditions.tilt_degrees))
    quad = np.array([[-half * shrink, -half * shrink], [half * shrink, -half * shrink], [half, half], [-half, half]], dtype=np.float32)
    quad[:, 1] *= (1.0 + shrink) / 2.0  # the tilted ticket is also foreshortened
    angle = np.radians(conditions.rotation_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    centre = np.array([conditions.centre[0] * conditions.width, conditions.centre[1] * conditions.height], dtype=np.float32)
    return (quad @ rotation.T + centre).astype(np.float32)


def _light(frame: np.ndarray, conditions: FrameConditions, rng: np.random.Generator) -> None:
    height, width = frame.shape
    if conditions.uneven_light > 0:
        direction = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = (xs / width - 0.5) * np.cos(direction) + (ys / height - 0.5) * np.sin(direction)
        frame *= 1.0 - conditions.uneven_light * (ramp + 0.5)
    if conditions.glare > 0:
        cx = conditions.centre[0] * width + rng.uniform(-0.1, 0.1) * width
        cy = conditions.centre[1] * height + rng.uniform(-0.1, 0.1) * height
        radius = conditions.code_fraction * height * rng.uniform(0.15, 0.3)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
        frame += conditions.glare * 255.0 * blob
