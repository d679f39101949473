"""What differs between transformers versions: which keywords a function takes, where
ContinuousBatchingConfig lives, and a printable form of its config objects."""
import dataclasses
import inspect

def filter_kwargs(fn, kwargs, extra=()):
    """The kwargs that fn names as parameters (and those in `extra`, which it takes through **kwargs):
    an unknown name never reaches a **kwargs that would reject or misread it."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in params or k in extra}
    return kept, [k for k in kwargs if k not in kept]


def describe(obj):
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        return {f.name: repr(getattr(obj, f.name, None)) for f in dataclasses.fields(obj)}
    return {k: repr(v) for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else repr(obj)


def import_cb_config_class(transformers):
    """ContinuousBatchingConfig (transformers >= 5.3), wherever this version exports it; None before."""
    for where in ("transformers.generation", "transformers", "transformers.generation.configuration_utils"):
        try:
            mod = __import__(where, fromlist=["ContinuousBatchingConfig"])
            cls = getattr(mod, "ContinuousBatchingConfig", None)
            if cls is not None:
                return cls, where
        except Exception:
            continue
    return None, None
