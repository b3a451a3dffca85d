"""The engine: the rule index, evaluation of feed events, and the loop that records hits."""
