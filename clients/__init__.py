"""Clients of a Ponder server: the evaluation and calibration drivers behind `ponder eval` and
`ponder calibrate`."""
