#!/usr/bin/env python
"""Re-train the best trial of a study with several seeds and export the best-validation model.

Same as `python -m dataaug_multi_both.cli.hpo export`; the flags and the work live in `dataaug_multi_both.export`.
Its help ends with the package's disclaimer (`dataaug_multi_both.core.DISCLAIMER`).
"""
import argparse

from dataaug_multi_both.core import cli_entry


@cli_entry
def main(argv=None):
    from dataaug_multi_both.core import DISCLAIMER
    from dataaug_multi_both.export import add_export_args, export_main

    p = argparse.ArgumentParser(
        prog='scripts/export_best.py',
        description='Re-train the best trial of an Optuna study with several seeds (thresholds tuned on validation, '
        'scored on test), write export_summary.json with the mean and spread over seeds, and save the seed with '
        f'the best validation macro-F1 as a Hugging Face-loadable model. {DISCLAIMER}',
    )
    return export_main(add_export_args(p).parse_args(argv))


if __name__ == '__main__':
    main()
