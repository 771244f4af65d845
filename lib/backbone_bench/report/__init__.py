"""Stage 6, the book's side: what the notebooks call, the figures, and the pipeline that executes
the notebooks and builds the book (build.py).

The notebooks use ``from backbone_bench import report`` and call ``report.NAME``: the names below
are that interface, each living in the module that owns its job (display.py: figures, glue, long
tables, downloads; labels.py: words and formats; load.py: an edition's records and coverage;
about.py: the About box; tables.py: the answer's tables and sentences; checks.py: sanity and
plausibility; methods_text.py: what Methods says, from the records; costs.py: the cost page; sweep_hours.py: the sweep's hours;
decision.py: the answer as a decision; datasets.py: dataset cards). plots.py, editions.py, regret.py
(what this edition's pick costs at another resolution), kernels.py,
citation.py (CITATION.cff and what is made from it), release.py (an edition as a checksummed folder),
lab.py (the lab's two notebooks and its key) and build.py are imported by name.

May import every earlier stage (errors, paths, environment, data, models, engine, study, analysis).
"""
from backbone_bench.report.display import (  # noqa: F401
    downloads, glue, long_table, show)
from backbone_bench.report.labels import (  # noqa: F401
    COST_COLUMNS, DOMAINS_IN_ORDER, GAINS, METRIC, MODE_NAMES, MODE_RAN, MODE_RUNS, SHORT_DOMAIN, SHORT_MODES,
    chance_of, domain_title, fmt_interval, interval_note, listed, short_name)
from backbone_bench.report.load import (  # noqa: F401
    coverage, coverage_text, draws, edition_line, load, missing_runs, results_path, stand_ins_text, successor_text,
    twins_left_out, with_clean_scores)
from backbone_bench.report.about import (  # noqa: F401
    about, coverage_grid, flags_in_words, page_params, published_edition, rerun_command)
from backbone_bench.report.tables import (  # noqa: F401
    cell_display, cell_table, cells_where, decision_table, decision_text, domain_ranking, domain_summary, gains_display,
    gains_summary, interval_scope, range_text, ranking_table, recommendation, separable)
from backbone_bench.report.checks import (  # noqa: F401
    REFERENCES, chance_display, chance_levels, class_weighting_text, clean_differences, clean_display,
    clean_text, collapsed_text, failures, plausibility, plausibility_display, plausibility_text,
    pretrained_vs_scratch, probe_refit_text, sanity_display, sanity_text)
from backbone_bench.report.methods_text import (  # noqa: F401
    clean_selection_text, equal_treatment_text, eval_passes_text, overlap_text, precision_text, shift_text,
    twin_rules_text)
from backbone_bench.report.costs import (  # noqa: F401
    convergence, convergence_text, cost_display, cost_table, gpu_time_text, gpu_training_time, repeated_timings_text,
    training_time, training_time_display, wide_time_text, wide_training_time)
from backbone_bench.report.sweep_hours import resolution_budget_text, sweep_hours_text  # noqa: F401
from backbone_bench.report.decision import (  # noqa: F401
    answer, answer_display, answer_text, cost_words, decision_csv, picks_display)
from backbone_bench.report.datasets import (  # noqa: F401
    best_backbone, clone_text, confusion_of_best, dataset_cards, fewer_than_asked, sources_text)
