"""The embedded default: a simulated platform with a clock that can run faster than real time."""
