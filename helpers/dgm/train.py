r"""The one training loop every lab uses.

    history = dgm.train.fit(model, x_train, loss_fn, steps=2000, checkpoint="ae.pt")

* ``loss_fn(model, x) -> loss`` (or ``(loss, {"name": value, ...})``) for the usual
  zero_grad → backward → step; or ``step_fn(x, step) -> float | dict`` when the lab owns the
  update (GANs alternate two optimizers).
* Batches are a deterministic function of ``(seed, step)``, and a checkpoint stores the models,
  optimizers, history and RNG state: after a Colab disconnect, calling ``fit`` again with the
  same ``checkpoint=`` path continues exactly where it stopped (and returns at once when done).
* A checkpoint cannot go stale: it stores a fingerprint of the model (class source, module structure,
  parameter shapes), the training settings (batch size, seed, the optimizer and its hyperparameters such as lr,
  ``config=``) and the loss/step function (its source, defaults, closure and the scalar globals it reads,
  e.g. a notebook's ``BETA``). When any of them changed, training starts over with a one-line note and
  the old file is kept as ``<name>.old``; an unchanged re-run resumes bit-exactly.
* Mixed precision (float16 autocast + GradScaler) on cuda, full precision elsewhere.
* A tqdm.auto progress bar with the running loss, rate and ETA (it knows the total); it is off while
  nbgrader executes a notebook.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import math
import os
import types
from pathlib import Path
from typing import Callable

import torch

__all__ = ["fit", "fingerprint", "EMA"]

_SCALARS = (int, float, complex, str, bool, bytes, type(None))


def _as_images(data) -> torch.Tensor:
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor):
        data = data[0]  # (x, y) → x
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a tensor of training examples (N, ...) or an (x, y) pair, got {type(data).__name__}")
    if data.dim() == 0 or len(data) == 0:
        raise ValueError(f"data must hold at least one example along dim 0, got shape {tuple(data.shape)}")
    return data


def _batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the batch for ``step``: a fixed permutation per epoch, so a resumed run sees the same batches."""
    per_epoch = max(n // batch_size, 1)
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[i * batch_size:(i + 1) * batch_size]


# ----------------------------------------------------------------------------- fingerprints
def _value(v, depth: int, seen: set, top: bool = False) -> str:
    """A stable description of a value a function reads (no memory addresses; mutable containers by type)."""
    if isinstance(v, _SCALARS):
        return repr(v)
    if isinstance(v, tuple) and len(v) <= 32:
        return "(" + ", ".join(_value(e, depth, seen) for e in v) + ")"
    if isinstance(v, dict) and not top:  # a mutable container: its contents may change while training runs
        return "dict"
    if isinstance(v, dict) and len(v) <= 32:
        return "{" + ", ".join(f"{k!r}: {_value(e, depth, seen)}" for k, e in v.items()) + "}"
    if isinstance(v, (list, set)):
        return type(v).__name__
    if isinstance(v, torch.Tensor):
        small = v.numel() <= 16 and v.device.type != "meta"
        return f"tensor{tuple(v.shape)}{v.dtype}" + (repr(v.detach().cpu().tolist()) if small else "")
    if isinstance(v, types.ModuleType):
        return f"module {v.__name__}"
    if isinstance(v, torch.nn.Module):
        if next(v.parameters(), None) is None:  # a pure holder of constants (a noise schedule): its values count
            return f"{type(v).__qualname__}{v!r}" + "".join(
                f"|{k}:{_value(b, 0, seen)}:{_digest(repr(b.detach().cpu().tolist()))}" for k, b in v.state_dict().items())
        return f"module object {type(v).__qualname__}"  # weights and running stats are the checkpoint's business
    if callable(v) and depth > 0 and not isinstance(v, type):
        return _function(v, depth - 1, seen)
    if hasattr(v, "__dataclass_fields__"):
        return repr(v)  # configs such as VAEConfig
    return f"object {type(v).__qualname__}"


def _function(fn, depth: int = 2, seen: set | None = None) -> str:
    """The source of ``fn`` (code-object bytes and constants when there is none), its defaults, closure and
    the scalar globals it reads — and the same, ``depth`` levels deep, for the functions it calls by name."""
    seen = set() if seen is None else seen
    if isinstance(fn, functools.partial):
        return (f"partial({_function(fn.func, depth, seen)}, {_value(fn.args, depth, seen)}, "
                f"{_value(fn.keywords, depth, seen, top=True)})")
    fn = getattr(fn, "__func__", fn)  # bound method → function
    if not isinstance(fn, types.FunctionType):
        if isinstance(fn, types.BuiltinFunctionType):
            return f"builtin {getattr(fn, '__qualname__', fn)}"
        return f"callable {type(fn).__qualname__}: " + _class_source(type(fn))
    if id(fn) in seen:
        return f"(recursion {fn.__qualname__})"
    seen.add(id(fn))
    code = fn.__code__
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):  # no source file: compare the compiled code instead
        text = _code(code)
    parts = [f"{fn.__module__}.{fn.__qualname__}", text, _value(fn.__defaults__, depth, seen),
             _value(fn.__kwdefaults__, depth, seen, top=True)]
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            parts.append(f"{name}={_value(cell.cell_contents, depth, seen)}")
        except ValueError:  # empty cell
            parts.append(f"{name}=<empty>")
    for name in sorted(set(_names(code))):
        if name in fn.__globals__:
            parts.append(f"global {name}={_value(fn.__globals__[name], depth, seen)}")
    return "\n".join(parts)


def _names(code: types.CodeType):
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):  # nested lambdas and comprehensions
            yield from _names(c)


def _code(code: types.CodeType) -> str:
    consts = [(_code(c) if isinstance(c, types.CodeType) else repr(c)) for c in code.co_consts]
    return code.co_code.hex() + repr(code.co_names) + repr(consts)


def _class_source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # a class defined in a notebook: its methods still have sources
        return "\n".join(_function(f, 0) for f in vars(cls).values() if isinstance(f, types.FunctionType))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hyper(group: dict) -> dict:
    """An optimizer's hyperparameters; with a scheduler attached (``initial_lr``), the values it moves
    during training (lr, betas, momentum) are left out, so a re-run in the same kernel still matches."""
    moved = ("params", "lr", "betas", "momentum") if "initial_lr" in group else ("params",)
    return {h: _value(v, 0, set()) for h, v in sorted(group.items()) if h not in moved}


def fingerprint(models: dict, optimizers: dict, fn: Callable, settings: dict) -> dict:
    """What a checkpoint was trained with, as ``{part: hash}`` (model, optimizer, settings, step function)."""
    model = "\n".join(f"{k}: {type(m).__module__}.{type(m).__qualname__}\n{_class_source(type(m))}\n{m!r}\n"
                      + repr([(n, tuple(p.shape)) for n, p in m.state_dict().items()])
                      for k, m in sorted(models.items()))
    opts = "\n".join(f"{k}: {type(o).__qualname__} " + repr([_hyper(g) for g in o.param_groups])
                     for k, o in sorted(optimizers.items()))
    return {"model": _digest(model), "optimizer": _digest(opts),
            "settings": _digest(_value(settings, 0, set(), top=True)),
            "step function": _digest(_function(fn))}


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never corrupts the previous checkpoint


def fit(model, data, loss_fn: Callable | None = None, *, step_fn: Callable | None = None, optimizer=None,
        steps: int = 1000, batch_size: int = 128, lr: float = 1e-3, device=None, checkpoint=None,
        resume: bool = True, checkpoint_every: int | None = None, amp: bool | None = None,
        progress: bool | None = None, seed: int = 0, callback: Callable | None = None,
        callback_every: int = 100, config: dict | None = None, labels: torch.Tensor | None = None) -> dict:
    """Train for ``steps`` updates and return the history ``{name: [value per step]}``.

    ``model`` is a module or a dict of modules, ``optimizer`` an optimizer or a dict of them (default:
    Adam(lr) over ``model``). ``callback(step, history)`` runs every ``callback_every`` steps (snapshots).
    ``config`` holds further hyperparameters (e.g. ``{"beta": 4}``) that, when changed, make a checkpoint stale
    (values the loss/step function reads from its closure or from notebook globals are noticed anyway).
    With ``labels`` (N,) beside ``data`` (N, ...), ``step_fn(x, step, y)`` also gets the batch's labels.
    """
    from . import device as _device

    if (loss_fn is None) == (step_fn is None):
        raise ValueError("pass exactly one of loss_fn(model, x) or step_fn(x, step)")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x_all = _as_images(data)
    if labels is not None:
        if step_fn is None:
            raise ValueError("labels= goes with step_fn(x, step, y); loss_fn(model, x) has no place for them")
        if not isinstance(labels, torch.Tensor) or labels.shape != (len(x_all),):
            raise ValueError(f"labels must be a ({len(x_all)},) tensor, one label per example; got "
                             f"{type(labels).__name__} {tuple(getattr(labels, 'shape', ()))}")
    dev = torch.device(device) if device is not None else _device()
    models = dict(model) if isinstance(model, dict) else {"model": model}
    for m in models.values():
        m.to(dev)
    if optimizer is None:
        if step_fn is not None:
            raise ValueError("with step_fn, pass the optimizer(s) you step so checkpoints can save them")
        optimizer = torch.optim.Adam(models["model"].parameters(), lr=lr)
    optimizers = dict(optimizer) if isinstance(optimizer, dict) else {"opt": optimizer}
    use_amp = (dev.type == "cuda") if amp is None else bool(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dev.type == "cuda")
    history: dict[str, list[float]] = {}
    start = 0

    path = Path(checkpoint) if checkpoint is not None else None
    settings = {"batch_size": batch_size, "seed": seed,  # not steps: fit(steps=more) continues a finished run
                **{f"config.{k}": v for k, v in dict(config or {}).items()}}
    fp = fingerprint(models, optimizers, step_fn or loss_fn, settings) if path is not None else None
    if path is not None and resume and path.exists():
        try:
            state = torch.load(path, map_location=dev, weights_only=False)
        except Exception as err:
            raise RuntimeError(f"Could not resume from checkpoint {path} ({type(err).__name__}: {err}). "
                               "Delete the file to start over, or pass resume=False.") from err
        old = state.get("fingerprint") if isinstance(state, dict) else None
        changed = [k for k in fp if not old or old.get(k) != fp[k]]
        if changed:
            kept = path.with_name(path.name + ".old")
            os.replace(path, kept)
            what = f"the {' and '.join(changed)} changed since it was written" if old else "it has no fingerprint"
            print(f"{path}: {what} — training starts over (the old file is kept as {kept.name}).")
            state = None
    else:
        state = None
    if state is not None:
        try:
            for k, m in models.items():
                m.load_state_dict(state["models"][k])
            for k, o in optimizers.items():
                o.load_state_dict(state["optimizers"][k])
        except Exception as err:
            raise RuntimeError(f"Could not resume from checkpoint {path} ({type(err).__name__}: {err}). "
                               "Delete the file to start over, or pass resume=False.") from err
        scaler.load_state_dict(state["scaler"])
        history, start = state["history"], state["step"]
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        print(f"Resumed from {path} at step {start}/{steps}.")
    else:
        torch.manual_seed(seed)

    def save(step: int) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, {
            "step": step, "history": history, "scaler": scaler.state_dict(),
            "models": {k: m.state_dict() for k, m in models.items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "rng": torch.get_rng_state(), "fingerprint": fp,
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        })

    every = checkpoint_every or max(steps // 10, 50)
    show = progress if progress is not None else not os.environ.get("NBGRADER_EXECUTION")
    from tqdm.auto import tqdm

    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not show, leave=False,
               dynamic_ncols=True)
    for m in models.values():
        m.train()
    running = None
    done = start  # completed steps
    try:
        for step in bar:
            idx = _batch_indices(len(x_all), batch_size, seed, step)
            x = x_all[idx].to(dev, non_blocking=True)  # (B, ...)
            if step_fn is not None:
                out = step_fn(x, step) if labels is None else step_fn(x, step, labels[idx].to(dev))
                logs = dict(out) if isinstance(out, dict) else {"loss": out}
            else:
                opt = optimizers["opt"]
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                    out = loss_fn(models["model"], x)
                loss, extras = out if isinstance(out, tuple) else (out, {})
                if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                    raise ValueError("loss_fn must return a scalar tensor (or (loss, extras)); got "
                                     f"{type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}")
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                logs = {"loss": loss, **extras}
            for k, v in logs.items():
                history.setdefault(k, []).append(float(v.detach()) if isinstance(v, torch.Tensor) else float(v))
            done = step + 1
            main = next(iter(logs))
            value = history[main][-1]
            if not math.isfinite(value):
                save(done)
                raise FloatingPointError(f"{main} became {value} at step {step}: lower the learning rate "
                                         "or check the loss for log(0).")
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.set_postfix({main: f"{running:.4g}"}, refresh=False)
            if callback is not None and (step + 1) % callback_every == 0:
                callback(step + 1, history)
            if (step + 1) % every == 0:
                save(step + 1)
    except KeyboardInterrupt:
        save(done)
        print(f"Interrupted after step {done}; saved to {path} — run the cell again to continue." if path else
              f"Interrupted after step {done}.")
        return history
    finally:
        bar.close()
        for m in models.values():
            m.eval()
    if steps > start:
        save(steps)
    return history


class EMA:
    r"""θ_EMA ← d·θ_EMA + (1 − d)·θ after every step, with d = min(decay, (1 + n)/(10 + n)) after n updates
    (a warm-up: the random initial weights are forgotten quickly). ``ema.model`` is a frozen copy in eval
    mode; buffers are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.995):
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None) -> None:
        """One update; ``step`` (the training step, e.g. after resuming a checkpoint) sets the warm-up count."""
        self.updates = self.updates + 1 if step is None else step + 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1 - d)                                # θ_EMA ← d θ_EMA + (1 − d) θ
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
