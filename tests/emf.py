"""Checks a CloudWatch Embedded Metric Format line against the specification's required fields
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
a root `_aws` object with `Timestamp` (milliseconds since the epoch) and `CloudWatchMetrics`, a
list of directives each with `Namespace`, `Dimensions` (lists of at most 30 names, each a string
member of the root) and `Metrics` (at most 100, each a `Name` with an optional valid `Unit`,
each named member a number or a list of at most 100 numbers)."""

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}


def problems(doc):
    """What makes `doc` (a parsed JSON line) invalid EMF; empty when it is valid."""
    found = []
    meta = doc.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws object"]
    timestamp = meta.get("Timestamp")
    if not isinstance(timestamp, int) or timestamp < 1_000_000_000_000:
        found.append(f"Timestamp {timestamp!r} is not epoch milliseconds")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return found + ["CloudWatchMetrics is not a non-empty list"]
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            found.append(f"Namespace {namespace!r}")
        for dimension_set in directive.get("Dimensions", None) or []:
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                found.append(f"dimension set {dimension_set!r}")
                continue
            for name in dimension_set:
                if not isinstance(doc.get(name), str) or not 1 <= len(doc[name]) <= 1024:
                    found.append(f"dimension {name!r} has no string member")
        if not isinstance(directive.get("Dimensions"), list):
            found.append("Dimensions is not a list")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > 100:
            found.append("Metrics is not a list of at most 100")
            continue
        for metric in metrics:
            name = metric.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                found.append(f"metric name {name!r}")
                continue
            if "Unit" in metric and metric["Unit"] not in UNITS:
                found.append(f"{name}: unit {metric['Unit']!r}")
            value = doc.get(name)
            numbers = value if isinstance(value, list) else [value]
            if not numbers or len(numbers) > 100 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                found.append(f"{name}: value {value!r} is not a number or a list of 1-100 numbers")
    return found
