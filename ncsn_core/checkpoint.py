"""Self-describing, versioned checkpoints: written atomically, loaded without executing pickled code."""
from __future__ import annotations

import logging
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .config import Config, ConfigError
from .fileio import atomic_write
from .models import ScoreModel, build_model

FORMAT_VERSION = 1
CKPT_RE = re.compile(r"^ckpt_(\d{8})\.pt$")
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says why and what to do."""


@dataclass
class Loaded:
    """A loaded checkpoint: the rebuilt model (EMA weights when present and asked for), its config, step,
    and the raw state for resuming."""
    model: ScoreModel
    config: Config
    step: int
    path: Path
    state: dict
    used_ema: bool


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through atomic_write: the old checkpoint or the new one survives a crash, never a torn one."""
    atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: Path, config: Config, step: int, model: torch.nn.Module,
                    optimizer: Optional[torch.optim.Optimizer] = None, ema: Optional[dict] = None,
                    extra: Optional[dict] = None, guide: Optional[dict] = None) -> Path:
    """guide: the autoguidance guide this checkpoint carries ({"config", "weights", "step"}, see `embed_guide`);
    without one the saved config's sample.guidance is 1, as nothing could guide the sampling."""
    cfg = config.to_dict()
    if guide is None:
        cfg["sample"]["guidance"] = 1.0
    cfg["sample"]["dg_weight"] = 0.0  # a checkpoint of training carries no discriminator (`ncsn discriminator`)
    state = {
        "format_version": FORMAT_VERSION,
        "config": cfg,
        "step": int(step),
        "model": model.state_dict(),
        "ema": ema,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": {"torch": torch.get_rng_state()},
        "extra": extra or {},
        "data_mean": getattr(model, "data_mean", None),
    }
    if guide is not None:
        state["guide"] = guide
    atomic_save(state, Path(path))
    return Path(path)


# opcodes that import or call something: a pickle with none of them holds only plain data
_CODE_OPS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _pickle_runs_code(path: Path) -> bool:
    """Whether a bare pickle file would import or call Python objects when unpickled: its opcodes are read,
    nothing is executed. False for a file that is not a pickle at all (or too torn to read)."""
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":  # PROTO, the first opcode of every pickle since protocol 2
            return False
        f.seek(0)
        try:
            return any(op.name in _CODE_OPS for op, _arg, _pos in pickletools.genops(f))
        except Exception:  # a torn pickle: genops stops at the tear (ValueError, EOFError, ...)
            return False


def _damaged_member(path: Path) -> Optional[str]:
    """The first archive member whose bytes fail their CRC ("data/3: bad CRC"), or None when all are intact."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None if bad is None else f"{bad.split('/', 1)[-1]}: bad CRC"


def read_state(path: Path, map_location="cpu") -> dict:
    """The raw checkpoint dict, with weights_only=True (no code runs); every failure is a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist: give the path of a .pt file or a run folder")
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"run folder {path} holds no complete checkpoint yet (looked in {path}/checkpoints)")
        path = found
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a torn copy loses its directory
        if _pickle_runs_code(path):  # a bare pickle (torch's legacy format, or pickle.dump): never unpickled
            raise CheckpointError(f"{path} contains pickled Python code/objects, refused, nothing was executed: "
                                  f"only load checkpoints you trust, saved by NCSN Studio")
        raise CheckpointError(f"{path} is truncated or damaged, or not a checkpoint saved by NCSN Studio; use an "
                              f"earlier checkpoint of the run")
    bad = _damaged_member(path)
    if bad is not None:  # torch.load does not check the zip's CRCs: flipped bytes would load as wrong weights
        raise CheckpointError(f"{path} is damaged ({bad}); use an earlier checkpoint of the run")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refuses any global outside torch's allow-list before calling it
        what = re.search(r"GLOBAL (\S+)", str(e))
        raise CheckpointError(f"{path} contains pickled Python code/objects{f' ({what[1]})' if what else ''}, refused, "
                              f"nothing was executed: only load checkpoints you trust, saved by NCSN Studio") from e
    except Exception as e:  # torch raises many kinds on torn files (RuntimeError, EOFError, KeyError, ...)
        raise CheckpointError(f"{path} is truncated or damaged ({type(e).__name__}); use an earlier checkpoint "
                              f"of the run") from e
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not an NCSN Studio checkpoint (no format_version/model entries)")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {state['format_version']}, newer than this NCSN Studio "
                              f"understands ({FORMAT_VERSION}): upgrade NCSN Studio")
    state["_path"] = str(path)
    return state


def load_checkpoint(path: Path, device="cpu", use_ema: bool = True) -> Loaded:
    """Rebuild the model from the checkpoint's own config and load its weights (EMA when present)."""
    state = read_state(path, map_location=device)
    try:
        config = Config.from_dict(state["config"])
        model = build_model(config)
    except (ConfigError, KeyError, TypeError) as e:
        raise CheckpointError(f"{state['_path']}: its config cannot be rebuilt ({e})") from e
    weights = state["ema"] if (use_ema and state.get("ema")) else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{state['_path']}: the weights do not fit the {config.model.arch} architecture its "
                              f"config describes ({first}); the file was edited or comes from another program") from e
    if state.get("data_mean") is not None:
        model.data_mean = state["data_mean"].float()
    model.to(device).eval()
    if state.get("guide"):
        model.set_guide(_build_guide(state, device))
    if state.get("discriminator"):
        model.set_discriminator(_build_discriminator(state, device))
    return Loaded(model, config, int(state["step"]), Path(state["_path"]), state, bool(use_ema and state.get("ema")))


def _build_guide(state: dict, device) -> ScoreModel:
    """The autoguidance guide a checkpoint carries (its "guide" entry, written by `embed_guide`), ready to sample."""
    guide = state["guide"]
    try:
        model = build_model(Config.from_dict(guide["config"]))
        model.load_state_dict(guide["weights"])
    except (ConfigError, KeyError, TypeError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{state['_path']}: its guide model cannot be rebuilt ({first}); the file was edited or "
                              f"damaged: embed the guide again with `ncsn guide`") from e
    return model.to(device).eval()


def _build_discriminator(state: dict, device) -> torch.nn.Module:
    """The discriminator a checkpoint carries (its "discriminator" entry, written by `embed_discriminator`)."""
    from .discriminator import build_discriminator
    try:
        return build_discriminator(state["discriminator"]).to(device)
    except (ConfigError, KeyError, TypeError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{state['_path']}: its discriminator cannot be rebuilt ({first}); the file was edited "
                              f"or damaged: train it again with `ncsn discriminator`") from e


def embed_discriminator(state: dict, entry: dict, dg_weight: float) -> dict:
    """A copy of checkpoint `state` (from read_state) that carries the discriminator `entry`
    (ncsn_core.discriminator.discriminator_entry) and samples with discriminator guidance weight `dg_weight` by
    default. No optimizer state: the result samples and evaluates, it does not resume."""
    from .config import SampleConfig
    SampleConfig(dg_weight=dg_weight)  # the range check, in the config's words
    out = {k: v for k, v in state.items() if k != "_path"}
    out["config"] = {**state["config"], "sample": {**state["config"]["sample"], "dg_weight": float(dg_weight)}}
    out["discriminator"] = entry
    out["optimizer"] = None
    return out


def embed_guide(state: dict, guide_path: Path, guidance: float) -> dict:
    """A copy of checkpoint `state` (from read_state) that carries the checkpoint at `guide_path` as its
    autoguidance guide (Karras et al. 2024: a weaker model of the same data, e.g. an early checkpoint of the same
    run or a smaller network, whose errors the sampler steers away from) and samples with weight `guidance` by
    default. The guide's EMA weights are taken when it has them. Both must see the same images and, for
    level-conditioned models, the same ladder. No optimizer state: the result samples and evaluates, it does not
    resume. extra["guide"] names the guide's file and step."""
    from .config import SampleConfig
    SampleConfig(guidance=guidance)  # the range check, in the config's words
    guide = read_state(guide_path)
    mine, theirs = state["config"], guide["config"]
    for section, field in (("data", "image_size"), ("data", "channels"), ("model", "conditioning")):
        a, b = mine[section].get(field), theirs[section].get(field)
        if a != b:
            raise CheckpointError(f"{guide['_path']} cannot guide {state['_path']}: its {section}.{field} is {b!r}, "
                                  f"not {a!r}; the guide must be a model of the same images (e.g. an early checkpoint "
                                  f"of the same run)")
    if mine["model"].get("conditioning") != "sigma" and mine["noise"] != theirs["noise"]:
        raise CheckpointError(f"{guide['_path']} cannot guide {state['_path']}: their noise ladders differ "
                              f"({theirs['noise']} vs {mine['noise']}), and level-conditioned models only share levels "
                              f"on the same ladder")
    out = {k: v for k, v in state.items() if k != "_path"}
    out["config"] = {**mine, "sample": {**mine["sample"], "guidance": float(guidance)}}
    out["guide"] = {"config": theirs, "weights": guide.get("ema") or guide["model"], "step": int(guide["step"])}
    out["optimizer"] = None
    out["extra"] = {**(state.get("extra") or {}), "guide": {"file": str(guide_path), "step": int(guide["step"]),
                                                            "ema": bool(guide.get("ema"))}}
    return out


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_RE.match(p.name))


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """Newest complete checkpoint of a run folder: temp files of an interrupted save (*.tmp) are not listed, and
    a torn ckpt_*.pt (no zip directory at its end, e.g. copied by hand and cut short) is passed over, with a
    warning, for the one before it."""
    for p in reversed(list_checkpoints(run_dir)):
        if zipfile.is_zipfile(p):
            return p
        log.warning("skipping %s: truncated or damaged (no zip directory); using an earlier checkpoint", p)
    return None


def average_checkpoints(paths: Sequence[Path]) -> dict:
    """A checkpoint state whose raw and EMA weights are the uniform averages of those of `paths` (checkpoints of
    one run): Polyak averaging after the fact, a longer EMA chosen once training is over (Karras et al. 2024 do
    this in a principled, "post-hoc EMA" form). The rest (config, step, data_mean) is the last one's; it keeps no
    optimizer state, so it samples and evaluates but does not resume. extra["averaged"] names the steps."""
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    sums: dict = {}
    first, steps = None, []
    for path in paths:
        state = read_state(path)
        steps.append(int(state["step"]))
        if first is None:
            first = state
        elif state["config"]["model"] != first["config"]["model"] or set(state["model"]) != set(first["model"]):
            raise CheckpointError(f"{state['_path']} has another network than {first['_path']}: only checkpoints "
                                  f"of one run can be averaged")
        if bool(state.get("ema")) != bool(first.get("ema")):
            raise CheckpointError(f"{state['_path']} and {first['_path']} differ in having EMA weights")
        for part in ("model", "ema") if state.get("ema") else ("model",):
            acc = sums.setdefault(part, {})
            for k, v in state[part].items():
                if v.is_floating_point():  # float64 sums: n equal values average back to that value exactly
                    acc[k] = acc.get(k, 0) + v.double()
                else:
                    acc[k] = v
    last = state
    avg = {part: {k: (v / len(paths)).to(last[part][k].dtype) if v.is_floating_point() else v
                  for k, v in acc.items()} for part, acc in sums.items()}
    out = {k: v for k, v in last.items() if k != "_path"}
    out.update(model=avg["model"], ema=avg.get("ema"), optimizer=None,
               extra={**(last.get("extra") or {}), "averaged": {"run": str(Path(last["_path"]).parent.parent),
                                                                "steps": steps}})
    return out
