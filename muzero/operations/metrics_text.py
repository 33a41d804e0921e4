"""Reading a Prometheus /metrics page: the cluster status, the benchmarks, `muzero status`
and the actor autoscaler all want plain numbers by sample name."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> dict[str, float]:
    """Sample name -> value; the samples of a labelled metric are summed per name."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def scrape(url: str, timeout_s: float = 2.0) -> dict[str, float]:
    """:func:`parse` of the page at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return parse(response.read().decode())
