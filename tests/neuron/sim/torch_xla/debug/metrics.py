"""No compilation, so no compile metrics."""


def metrics_report() -> str:
    return ""


def short_metrics_report(*args: object, **kwargs: object) -> str:
    return ""
