"""Arm (style) names with a meaning of their own."""

#: the plain catalog image, no generated background: the control of every experiment
ORIGINAL = "original"
