"""The Python API behind the names `mfftools` exports (docs/python-api.md).

  evaluations   instance, pairs, identification, template (and the functions the commands call)
  calibration   calibrate, cross_validate, Calibration
  files         load, save, report
  results       the result objects: the results dict, its file, its table
  inputs        what the entry points share in reading their arguments
"""
