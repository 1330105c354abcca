"""Post-hoc calibration of comparison scores, and fairness mitigation on top of it.

  calibrators   score -> probability maps fitted on labelled pairs: beta, isotonic, binning
  kmeans        FAISS k-means (seeded) and nearest-centroid assignment of images
  methods       baseline, faircal, fsn, gst, oracle, group-norm: fit on calibration pairs,
                apply to any pair from its raw score and its two images' cluster or group
  metrics       accuracy, equal false-positive rates and calibration per group (FairCal's)
  crossval      each fold tested with the methods fitted on the others
  store         the calibration file (cal.npz, no pickle) and its checks against embeddings
"""
