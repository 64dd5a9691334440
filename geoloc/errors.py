"""Every exception type of the package, in one place at the bottom of the import graph.

The entry points sort failures by *kind*, not by the module that raised them
(:func:`geoloc.cli.common.hydra_task`): an option the user can fix (exit 2, "invalid
config"), an input file that cannot be used (exit 2, "bad input", naming the file, line
and field), anything else (a traceback). Each type below subclasses the kind it belongs
to, so a new module reuses a kind instead of inventing one, and any module can raise or
catch them without importing the module that happens to raise them (which is how import
knots grew before this file existed).
"""

from __future__ import annotations

# --- kind "invalid config": an option, named in the message, and what is allowed -------


class ConfigError(ValueError):
    """A config option is invalid; the message says which and what is allowed."""


class DataConfigError(ValueError):
    """An invalid data option; the message names the option."""


class LabelSetError(ValueError):
    """A label-set option is invalid (unknown or duplicated code)."""


class ModelConfigError(ValueError):
    """An invalid model option; the message names the option and what is allowed."""


class TokenizerVariantError(ValueError):
    """An unknown ``tokenizer.variant`` option."""


class BackboneMismatchError(ValueError):
    """A model's frozen backbone tensors differ from the backbone materialised here."""


class PredictorError(ValueError):
    """A model path or option the predictor cannot use; the message says which and why."""


class ExportError(ValueError):
    """A model that cannot be exported, or a destination that would be overwritten."""


class JobError(ValueError):
    """An output that would be overwritten, parts of another run, an unknown extension."""


class AudienceError(ValueError):
    """An option the estimators cannot use; the message names it. (Unusable calibration
    files raise :class:`InputFileError`: they are bad input.)"""


# --- kind "bad input": a file, line and field ------------------------------------------


class InputFileError(ValueError):
    """An input file that cannot be used as a whole (missing, a directory, no usable row,
    bad rows in training data); the message names the file (and line and field)."""


class RecordError(ValueError):
    """A bad input row. The message names the file, the line and the field."""

    def __init__(self, path: str, line: int, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")


class CheckpointError(InputFileError):
    """A file given as a checkpoint that is not one geoloc can read (missing, a folder,
    truncated, another kind of file, or holding objects other than tensors and plain
    containers); the message names the file and the problem."""


class BundleError(InputFileError):
    """A model bundle folder that is not whole: a file missing, one the manifest does not
    list, or one whose bytes differ from the manifest's hash. The message names the file."""


def all_rows_rejected(source: object, rows: int, errors_file: object) -> InputFileError:
    """The error of a batch job that read rows and could use none of them: its outputs and
    errors file are written, but a run that did nothing must not exit 0
    (``geoloc-predict`` and ``geoloc-audience`` raise it, ``geoloc-label`` prints it)."""
    return InputFileError(f"{source}: every one of its {rows} row(s) was rejected; the "
                          f"reasons are in {errors_file}")


#: The exception types an entry point reports as "invalid config" (one line, exit 2).
CONFIG_ERRORS = (ConfigError, DataConfigError)
#: The exception types an entry point reports as "bad input" (one line, exit 2).
INPUT_ERRORS = (InputFileError, RecordError)
