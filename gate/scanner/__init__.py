"""QR ticket readers: camera, serial scanner modules, keyboard-wedge HID scanners."""
