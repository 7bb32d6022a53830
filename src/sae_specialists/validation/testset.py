"""Parse-time check of the optional test set (``validation.test_texts``)."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.errors import ConfigError


def check_test_categories(test_dir: str, test: Iterable[str], study: Iterable[str]) -> None:
    """The test set must hold exactly the study's categories (a category file each)."""
    test, study = set(test), set(study)
    if test != study:
        missing, extra = sorted(study - test), sorted(test - study)
        raise ConfigError(
            f"config: validation.test_texts = {test_dir!r} must hold the study's categories "
            f"({', '.join(sorted(study))})"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in the study: {', '.join(extra)}" if extra else "")
            + ". Add or rename the category files there, or set validation.test_texts: null."
        )
