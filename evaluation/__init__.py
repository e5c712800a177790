"""The evaluation tools: the drivers behind `ponder eval` and `ponder calibrate`, which send
labelled problems to a Ponder server and measure or fit what its strategies achieve."""
