"""Every touch of AstrBot internals lives in this package, behind small functions."""
