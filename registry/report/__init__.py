"""The per-snapshot HTML report (``reports/{snapshot_id}/index.html``) that council directors
and engineers look at: headline numbers, trusted merchants by grade and region, the score
distribution, top changes, each region's data-quality scorecard, gift-product rankings, the
joint complaint analysis, and links to the data docs and the manifest.

The page is self-contained: the Vega, Vega-Lite and vega-embed runtime that draws the charts is
inlined (from the bundle ``vl-convert-python`` ships), so it loads nothing from the network and
opens from disk, from an e-mail attachment or from a static bucket alike.

Three layers, as everywhere in the registry:

- :mod:`~registry.report.data`: pure functions that compute the report's data from frames and
  batch records, and the chart specs;
- :mod:`~registry.report.page`: one rendering function, :func:`report_html`, over the Jinja2
  template ``registry/report/templates/report.html.j2``;
- :mod:`~registry.report.writer`: the I/O edge; :func:`report_data` reads a snapshot and the
  batch ledger, :func:`write_report` writes the page and lists it in ``reports/index.html``,
  the index of every snapshot's report, newest first (:mod:`~registry.report.index`).

The data-quality scorecard is computed from the batch records (rows received, accepted, the
quarantine reasons that failed most, held batches with the gate's reasons and the uploaded
file's name, masked). Everything is said in words, with codes small beside them: reasons from
the rejection catalogue and the batch gate, kinds of change and column names from the published
contracts. Great Expectations Data Docs found under the report's folder are linked.
"""

from registry.report.data import (
    GRADE_COLOURS,
    GRADES,
    check_reason,
    complaint_category_labels,
    complaint_charts,
    complaints_by_region_and_category,
    complaints_by_region_and_month,
    complaints_headline,
    cross_region_merchants,
    days_to_resolve,
    file_name_shown,
    file_name_words,
    gift_rankings,
    headline_numbers,
    region_scorecards,
    relative_link,
    score_chart_spec,
    score_distribution,
    top_changes,
    trusted_by_region_and_grade,
    trusted_chart_spec,
    value_label,
)
from registry.report.index import update_reports_index
from registry.report.page import ReportData, report_html, reports_index_html, vega_runtime
from registry.report.writer import report_data, write_report

__all__ = [
    "GRADES",
    "GRADE_COLOURS",
    "ReportData",
    "check_reason",
    "complaint_category_labels",
    "complaint_charts",
    "complaints_by_region_and_category",
    "complaints_by_region_and_month",
    "complaints_headline",
    "cross_region_merchants",
    "days_to_resolve",
    "file_name_shown",
    "file_name_words",
    "gift_rankings",
    "headline_numbers",
    "region_scorecards",
    "relative_link",
    "report_data",
    "report_html",
    "reports_index_html",
    "score_chart_spec",
    "score_distribution",
    "top_changes",
    "trusted_by_region_and_grade",
    "trusted_chart_spec",
    "update_reports_index",
    "value_label",
    "vega_runtime",
    "write_report",
]
