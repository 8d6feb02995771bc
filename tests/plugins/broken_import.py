import gradbench_does_not_exist  # noqa: F401
