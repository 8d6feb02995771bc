"""Built-in gradient estimators (installed as ``gradbench.estimators``); every module here registers one."""
