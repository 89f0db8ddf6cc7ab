"""ID-card readers: the resident-ID security-module readers on a serial or USB-serial port
(sam.py). Keyboard-wedge readers and readers that send the number as a text line are the
scanner classes of gate/scanner (hid, serial) reused as they are; see docs/realname.md."""
