"""yinqi (银企): the command-line front door and the end-to-end demo wiring."""

__version__ = "0.1.0"
