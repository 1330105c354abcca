"""The evaluation engine, shared by every protocol; nothing here knows a protocol's name.

  tiles       plans of tiles over a score matrix (triangle, rectangle), split over ranks
  scoring     canonical rows and scores; screening precisions and their error bounds
  blocks      the pass: an iterator of screened, masked blocks, rescoring on demand
  topset      the running top set of pair scores above a cut, and its block collector
  topk        the k best columns of every row
  counts      exact counts above thresholds (a second pass, when a top set cannot answer)
  distributed merging what torch.distributed ranks accumulated
  threads     how many CPU threads the memory-bound work between the products uses

A protocol builds a plan, iterates scored blocks into its accumulators, and turns what they hold
into counts and rates (instance.py, identification.py).
"""
