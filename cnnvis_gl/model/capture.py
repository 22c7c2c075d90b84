"""Capture what a model computes from one concrete forward pass (module hooks + torch functions).

:func:`record_calls` runs the model once, in eval mode, on a batch of two zero images and records
every *call*: each call of a supported ``torch.nn`` leaf module (Conv2d, BatchNorm2d, ReLU, …) and
each torch function or tensor method called outside such modules (``torch.cat``, ``x + y``,
``x.view(…)``, ``F.relu``, …), with its arguments (tensors replaced by references to the call that
produced them) and its output.  Python control flow in ``forward()`` simply runs, so models that
symbolic tracing (``torch.fx``) cannot follow are captured too; user-defined modules are entered,
and their calls are named after the module path (``layer1.0.add``).

:class:`TapSession` runs the same bookkeeping during the statistics pass: calls are numbered in
the same order, and the outputs of the calls the graph measures (its *taps*) are handed to a
callback the moment they are computed, so no activation outlives the forward pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ModelError
from .cpu_fallback import cuda_constructors_on_cpu
from .transformer import ENTERED, WrittenOut

# --------------------------------------------------------------------------------------------
# What a call is
# --------------------------------------------------------------------------------------------

#: Leaf module classes and the kind of layer they are.  A subclass with its own ``forward`` is
#: entered instead (e.g. torchvision's ``LayerNorm2d``).
MODULE_KINDS: dict[type, str] = {
    nn.Conv2d: "conv",
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.BatchNorm1d: "norm",
    nn.BatchNorm2d: "norm",
    nn.SyncBatchNorm: "norm",
    nn.GroupNorm: "norm",
    nn.InstanceNorm2d: "norm",
    nn.LayerNorm: "norm",
    nn.LocalResponseNorm: "norm",
    nn.ReLU: "act",
    nn.ReLU6: "act",
    nn.LeakyReLU: "act",
    nn.ELU: "act",
    nn.SELU: "act",
    nn.CELU: "act",
    nn.GELU: "act",
    nn.SiLU: "act",
    nn.Mish: "act",
    nn.Tanh: "act",
    nn.Sigmoid: "act",
    nn.Hardtanh: "act",
    nn.Hardswish: "act",
    nn.Hardsigmoid: "act",
    nn.Softplus: "act",
    nn.PReLU: "act",
    nn.Softmax: "act",
    nn.Softmax2d: "act",
    nn.RReLU: "act",
    nn.Softsign: "act",
    nn.Tanhshrink: "act",
    nn.Softshrink: "act",
    nn.Hardshrink: "act",
    nn.LogSigmoid: "act",
    nn.Threshold: "act",
    nn.LogSoftmax: "act",
    nn.MaxPool2d: "pool",
    nn.AvgPool2d: "pool",
    nn.AvgPool3d: "pool",
    nn.AdaptiveAvgPool2d: "pool",
    nn.AdaptiveMaxPool2d: "pool",
    nn.AdaptiveAvgPool1d: "pool",  # (of a map flattened: a global pool, see trace.py)
    nn.AdaptiveMaxPool1d: "pool",
    nn.LPPool2d: "pool",
    nn.Upsample: "pool",
    nn.Dropout: "dropout",
    nn.Dropout1d: "dropout",
    nn.Dropout2d: "dropout",
    nn.Dropout3d: "dropout",
    nn.AlphaDropout: "dropout",
    nn.FeatureAlphaDropout: "dropout",
    nn.Identity: "identity",
    # a table looked up by constant indices (a relative-position bias) is a constant; by the
    # data, no layer (an error only if a layer reads it)
    nn.Embedding: "unknown",
    # a quantizable model in float (torchvision.models.quantization …, quantize=False)
    torch.ao.quantization.QuantStub: "identity",
    torch.ao.quantization.DeQuantStub: "identity",
    nn.Flatten: "layout",
    nn.ChannelShuffle: "layout",
    nn.ZeroPad2d: "layout",
    nn.ConstantPad2d: "layout",
    nn.ReflectionPad2d: "layout",
    nn.ReplicationPad2d: "layout",
    nn.PixelUnshuffle: "layout",
}

#: Containers are entered, never leaves.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

#: Torch functions and tensor methods by (normalised) name.
FUNCTION_KINDS: dict[str, str] = {
    **dict.fromkeys(
        "relu relu6 leaky_relu elu selu celu gelu silu mish sigmoid tanh hardtanh hardswish "
        "hardsigmoid softplus prelu threshold softmax log_softmax logsigmoid clamp clip pow square "
        "abs rrelu softsign tanhshrink softshrink hardshrink clamp_min clamp_max exp log sqrt "
        "rsqrt erf reciprocal rdiv sign round floor ceil trunc".split(),
        "act",
    ),
    **dict.fromkeys(
        "max_pool2d avg_pool2d avg_pool3d lp_pool2d adaptive_avg_pool2d adaptive_max_pool2d "
        "adaptive_avg_pool1d adaptive_max_pool1d "
        "mean amax amin sum max min norm linalg_vector_norm logsumexp std var interpolate upsample "
        "upsample_nearest upsample_bilinear matmul bmm einsum scaled_dot_product_attention".split(),
        "pool",
    ),
    **dict.fromkeys(
        "batch_norm layer_norm group_norm instance_norm local_response_norm normalize".split(),
        "norm",
    ),
    "conv2d": "conv",
    "conv1d": "conv1d",
    "linear": "linear",
    **dict.fromkeys("dropout dropout2d alpha_dropout feature_alpha_dropout".split(), "dropout"),
    # (an element-wise maximum joins its inputs: see function_kind)
    **dict.fromkeys("add sub rsub maximum minimum fmax fmin".split(), "add"),
    **dict.fromkeys("mul div truediv addcmul neg".split(), "mul"),
    **dict.fromkeys(
        "view reshape flatten transpose permute contiguous getitem split chunk unbind squeeze "
        "unsqueeze narrow clone detach to float cat concat concatenate swapaxes movedim "
        "unflatten channel_shuffle data T pad expand expand_as stack pixel_unshuffle "
        "index_select type type_as view_as reshape_as repeat tile repeat_interleave t".split(),
        "layout",
    ),
    # tensors made like another, whatever its values (zero channels padding a shortcut)
    **dict.fromkeys(
        "zeros_like ones_like full_like empty_like new_zeros new_ones new_full new_empty".split(),
        "constant",
    ),
}

#: Products of the data by a matrix: a linear layer where the matrix is made from parameters
#: (``x @ W``), else attention (or a dynamic convolution's kernel mixing).
PRODUCTS = ("matmul", "mm")

#: Layout functions that do not move data (their provenance is their input's); a broadcast
#: (``gate.expand_as(x)`` before ``x * gate``) counts as its input, as the product's own
#: broadcasting would.
NO_MOVE = {
    "contiguous", "clone", "detach", "to", "float", "type", "type_as", "data", "expand", "expand_as"
}

#: Calls whose second argument lends only its shape or dtype (``bias.expand_as(x)``).
_SHAPE_OF_OTHER = {"expand_as", "view_as", "reshape_as", "type_as"}

#: In-place reshapes (``x.unsqueeze_(1)``, SKNet): recorded as their out-of-place forms.
_RESHAPE_INPLACE = {"unsqueeze_", "squeeze_", "transpose_", "t_", "swapdims_", "swapaxes_"}

#: In-place tensor methods that are element-wise (their output is their input, updated).
_INPLACE_OK = {"relu_", "add_", "mul_", "sub_", "div_", "sigmoid_", "tanh_", "clamp_", "hardtanh_"}

_OPERATOR_NAMES = {
    "__add__": "add",
    "__radd__": "add",
    "__iadd__": "add",
    "__sub__": "sub",
    "__rsub__": "rsub",
    "__isub__": "sub",
    "__mul__": "mul",
    "__rmul__": "mul",
    "__imul__": "mul",
    "__truediv__": "div",
    "__itruediv__": "div",
    "__rtruediv__": "rdiv",  # c / x: element-wise
    "__rdiv__": "rdiv",
    "__neg__": "neg",
    "__getitem__": "getitem",
    "__setitem__": "setitem",
    "__matmul__": "matmul",
    "__pow__": "pow",
    "__ipow__": "pow",
}

# Results of calls that are not layers (shapes, sizes, truth values) are ignored.
_IGNORED = {
    "size",
    "dim",
    "numel",
    "__len__",
    "__bool__",
    "item",
    "tolist",
    "__format__",
    "__repr__",
}


def function_name(func: Any) -> str:
    """A readable, normalised name of a torch function or tensor method."""
    name = getattr(func, "__name__", None) or repr(func)
    if name == "__get__":  # a tensor property (Tensor.T.__get__ …)
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return _OPERATOR_NAMES.get(name, name)


def module_kind(module: nn.Module) -> tuple[str | None, str]:
    """``(kind, class name)`` of a leaf module, ``(None, name)`` for modules to enter.

    Raises ``ModelError`` for ``torch.nn`` modules that are neither supported nor containers.
    """
    cls = type(module)
    for base in cls.__mro__:
        if base in MODULE_KINDS:
            if cls.forward is base.forward:
                return MODULE_KINDS[base], cls.__name__
            return None, cls.__name__  # own forward(): enter it
    if isinstance(module, _CONTAINERS + ENTERED) or not cls.__module__.startswith("torch."):
        return None, cls.__name__
    if isinstance(module, torch.jit.ScriptModule):
        raise ModelError("TorchScript modules cannot be captured: pass the eager nn.Module")
    return "unsupported", cls.__name__


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An argument that is (part of) the output of call ``index``; ``item`` is the position in a
    tuple output (``()`` for a tensor output)."""

    index: int
    item: tuple[int, ...] = ()


@dataclass
class Call:
    """One recorded call."""

    index: int
    name: str  # unique: module path, or enclosing module path + function name
    kind: str  # layer kind (see FUNCTION_KINDS / MODULE_KINDS), "constant", or "input"
    op: str  # class name or function name
    target: Any  # the module or the function
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    value: Any  # the output (tensors of the capture pass)
    inputs: list[int] = field(default_factory=list)  # indices of the calls it reads
    where: str = ""  # "in 'layer1.0'": the module whose forward() made the call

    def refs(self) -> list[Ref]:
        """The call outputs it reads, in argument order, each once."""
        out: list[Ref] = []
        map_leaves((self.args, self.kwargs), lambda r: out.append(r) if r not in out else None, Ref)
        return out


def assigned(t: torch.Tensor, idx: Any, v: Any) -> torch.Tensor:
    """``t`` with ``t[idx] = v``, out of place: how an assignment is recorded (and followed
    on provenance tensors)."""
    t = t.clone()
    t[idx] = v
    return t


def function_kind(name: str, args: tuple, kwargs: dict) -> str:
    """The kind of a torch function call (:data:`FUNCTION_KINDS`); ``torch.max(a, b)`` and
    ``.min`` of two tensors are element-wise, like ``torch.maximum`` (FReLU's ``max(x, T(x))``):
    a join, not a reduction."""
    if name in ("max", "min") and len(_tensors((args, kwargs))) == 2:
        return "add"
    return FUNCTION_KINDS.get(name.rstrip("_"), "")


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _items(obj: Any, at: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], torch.Tensor]]:
    """The tensors of a call output with their positions."""
    if isinstance(obj, torch.Tensor):
        return [(at, obj)]
    if isinstance(obj, (list, tuple)):
        return [x for k, o in enumerate(obj) for x in _items(o, (*at, k))]
    return []


def pick(obj: Any, item: tuple[int, ...]) -> Any:
    """The part of a call output at ``item``."""
    for k in item:
        obj = obj[k]
    return obj


def _has_tensor(obj: Any) -> bool:
    return bool(_tensors(obj))


def _output_tensor(out: Any) -> torch.Tensor | None:
    """The logits of a model's output: a tensor, the first tensor of a tuple, or ``logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits
    ts = _tensors(out)
    return ts[0] if ts else None


def logits_of(out: Any) -> torch.Tensor | None:
    """The logits ``[N, K]`` in what a model's ``forward`` returns: a tensor, the first tensor
    of a tuple (auxiliary logits or features after it: GoogLeNet and Inception in training
    mode, distillation models' ``(logits, features)``), a dict's or an output object's
    ``logits``; an all-convolutional net's ``[N, K, 1, 1]`` map as ``[N, K]``."""
    t = _output_tensor(out)
    if t is not None and t.dim() > 2 and all(s == 1 for s in t.shape[2:]):
        t = t.flatten(1)
    return t


class _Session(TorchFunctionMode):
    """Numbers calls in forward order; in capture mode also records them."""

    def __init__(self, model: nn.Module, capture: bool) -> None:
        super().__init__()
        self.model = model
        self.capture = capture
        self.leaf_depth = 0
        self.count = 0  # calls numbered so far
        self.stack: list[str] = []  # paths of the entered (non-leaf) modules
        self.leaf = ""  # path of the leaf module being called (for errors)
        self.paths = {id(m): name for name, m in model.named_modules()}
        self.kinds: dict[int, tuple[str | None, str]] = {}
        self.handles: list[Any] = []
        # capture mode
        self.calls: list[Call] = []
        self.producer: dict[int, Ref] = {}  # id(tensor) -> where it came from
        self.keep: list[Any] = []  # keeps recorded tensors alive so ids stay unique
        self.names: set[str] = set()
        self.module_calls: dict[int, int] = {}
        self.nested: set[int] = set()  # modules also called inside a leaf module (unnumbered)
        self.calls_of: dict[int, int] = {}  # id(module) -> calls outside leaf modules
        self.outputs: dict[int, tuple[nn.Module, int]] = {}  # call index -> (module, j) returning it
        self.fn_calls: dict[str, int] = {}
        self.paused = False  # while a callback runs: its own torch calls are not the model's
        # probe mode
        self.on_call: Callable[[int, Any, tuple, dict], None] | None = None
        self.keep_hooks = False  # hooks stay between forward passes (until detach())
        self.written_out = WrittenOut(model)

    # ------------------------------------------------------------------ hooks
    def attach(self) -> None:
        """Register the module hooks (kept until :meth:`detach`); torch's attention modules
        written out meanwhile (:mod:`.transformer`)."""
        if not self.handles:
            self.written_out.__enter__()
            for m in self.model.modules():
                self.handles.append(m.register_forward_pre_hook(self._pre, with_kwargs=True))
                self.handles.append(m.register_forward_hook(self._post, with_kwargs=True))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.written_out.__exit__(None, None, None)

    def __enter__(self) -> _Session:
        self.attach()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        if not self.keep_hooks:
            self.detach()
        super().__exit__(*exc)

    def _kind(self, m: nn.Module) -> tuple[str | None, str]:
        k = self.kinds.get(id(m))
        if k is None:
            k = self.kinds[id(m)] = module_kind(m)
        return k

    def path(self, m: nn.Module) -> str:
        return self.paths.get(id(m), type(m).__name__)

    def _pre(self, m: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.leaf_depth:
            self.nested.add(id(m))
            self.leaf_depth += 1
            return
        kind, cls = self._kind(m)
        if kind is None:
            self.stack.append(self.path(m))
            return
        if kind == "unsupported" and self.capture:
            raise ModelError(
                f"unsupported module {self.path(m)!r} ({type(m).__module__}.{cls}): "
                f"cnnvis_gl captures convolutional networks; see docs/GRAPH.md for the "
                "supported layers (wrap it in a module whose forward() uses supported "
                "operations, or leave it out of the model you analyse)"
            )
        self.leaf_depth = 1
        self.leaf = self.path(m)

    def _post(self, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        if self.leaf_depth > 1:
            self.leaf_depth -= 1
            return
        j = self.calls_of.get(id(m), 0)
        self.calls_of[id(m)] = j + 1
        if self.leaf_depth == 1:
            self.leaf_depth, self.leaf = 0, ""
            kind, cls = self._kind(m)
            self._call(m, kind or "identity", cls, args, kwargs, out, module=True)
            if self.capture:
                self.outputs[self.count - 1] = (m, j)
            return
        if self.stack:
            self.stack.pop()
        if self.capture and isinstance(out, torch.Tensor) and id(out) in self.producer:
            ref = self.producer[id(out)]
            if ref.item == ():
                self.outputs.setdefault(ref.index, (m, j))  # the innermost module returning it

    # ------------------------------------------------------------------ functions
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        record = self.leaf_depth == 0 and not self.paused
        name = function_name(func) if record else ""
        if name in _RESHAPE_INPLACE and self.capture:
            self._keep_shape(args[0])
        out = func(*args, **kwargs)
        if record:
            if name in _RESHAPE_INPLACE:  # recorded as the out-of-place form
                func, name = getattr(torch.Tensor, name[:-1]), name[:-1]
            if name not in _IGNORED and _has_tensor(out):
                self._call(func, function_kind(name, args, kwargs), name, args, kwargs, out)
            elif name == "setitem" and isinstance(args[0], torch.Tensor):
                self._assignment(args)
        return out

    def _assignment(self, args: tuple) -> None:
        """``t[idx] = v``: recorded as ``assigned(t, idx, v)``, whose result is ``t`` from now
        on (DiverseBranchBlock fills a padded border with values from its norm).  An assignment
        to a view of a map, which changes that map as well, is refused."""
        t, idx, v = args[0], args[1], args[2]
        if self.capture and t._base is not None and self._reads_recorded(args):
            raise ModelError(
                f"in-place assignment to a slice of a view of a tensor ({self._where()}) is not "
                "supported: build the tensor with torch.cat instead"
            )
        if not isinstance(v, torch.Tensor):  # (a number: a constant like any other)
            with torch._C.DisableTorchFunction():
                v = torch.tensor(v, dtype=t.dtype, device=t.device)
        self._call(assigned, "layout", "setitem", (t, idx, v), {}, t)

    def _keep_shape(self, t: Any) -> None:
        """Before ``t.unsqueeze_(…)``: the call that made ``t`` keeps a view of it in its
        present shape (``t`` itself is about to change shape)."""
        ref = self.producer.get(id(t)) if isinstance(t, torch.Tensor) else None
        if ref is not None and ref.item == () and self.calls[ref.index].value is t:
            with torch._C.DisableTorchFunction():
                view = t.as_strided(t.size(), t.stride(), t.storage_offset())
            self.calls[ref.index].value = view
            self.keep.append(view)

    def _reads_recorded(self, args: Any) -> bool:
        return any(id(t) in self.producer for t in _tensors(args))

    def _where(self) -> str:
        top = self.stack[-1] if self.stack else ""  # ("" is the model itself)
        return f"in {top!r}" if top else "in forward() of the model"

    def _call(
        self,
        target: Any,
        kind: str,
        op: str,
        args: tuple,
        kwargs: dict,
        out: Any,
        module: bool = False,
    ) -> None:
        index = self.count
        self.count += 1
        if self.on_call is not None:
            self.paused = True
            try:
                # the consumer's own tensor work runs at full speed, outside this mode
                with torch._C.DisableTorchFunction():
                    self.on_call(index, out, args, kwargs)
            finally:
                self.paused = False
        if not self.capture:
            return
        if op in _SHAPE_OF_OTHER and len(args) == 2 and isinstance(args[1], torch.Tensor):
            # x.expand_as(y) reads only y's shape: a bias expanded like a map stays a constant
            with torch._C.DisableTorchFunction():
                other = torch.empty((), dtype=args[1].dtype, device=args[1].device)
                args = (args[0], other.expand(args[1].shape))
        inputs = [
            self.producer[id(t)].index for t in _tensors((args, kwargs)) if id(t) in self.producer
        ]
        if all(self.calls[i].kind == "constant" for i in inputs):
            kind = "constant"  # made from parameters or constants only (a positional encoding)
        elif op.endswith("_") and op not in _INPLACE_OK and not op.startswith("__") and not module:
            raise ModelError(
                f"unsupported in-place operation .{op}() {self._where()}: use the out-of-place form"
            )
        elif op in PRODUCTS and self._by_constant_matrix(args):
            kind = "linear"  # x @ W, W made from parameters only (a cosine classifier)
        elif kind == "":
            kind = "unknown"  # an error only if a layer reads it (not for control flow)
        name = self._name(target, op, module)
        ref = lambda a: self.producer.get(id(a), a)  # noqa: E731
        call = Call(
            index,
            name,
            kind,
            op,
            target,
            map_leaves(args, ref, torch.Tensor),
            map_leaves(kwargs, ref, torch.Tensor),
            out,
            sorted(set(inputs), key=inputs.index),
            self._where(),
        )
        self.calls.append(call)
        for item, t in _items(out):
            self.producer[id(t)] = Ref(index, item)
        self.keep.append(out)

    def _by_constant_matrix(self, args: tuple) -> bool:
        """Whether a product ``a @ b`` multiplies data by a matrix made from parameters or
        constants only (``F.normalize(x).mm(F.normalize(W, dim=0))``): a linear layer."""
        if len(args) != 2 or not all(isinstance(t, torch.Tensor) for t in args):
            return False
        a, b = (self.producer.get(id(t)) for t in args)
        constant = b is None or self.calls[b.index].kind == "constant"
        data = a is not None and self.calls[a.index].kind != "constant"
        return data and constant and args[1].dim() == 2

    def _name(self, target: Any, op: str, module: bool) -> str:
        if module:
            base = self.path(target)
            n = self.module_calls.get(id(target), 0)
            self.module_calls[id(target)] = n + 1
        else:
            parent = self.stack[-1] if self.stack else ""
            base = f"{parent}.{op.rstrip('_')}" if parent else op.rstrip("_")
        name, n = base, 0
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name


def map_leaves(obj: Any, fn: Callable[[Any], Any], leaf: type | tuple[type, ...]) -> Any:
    """``obj`` with every ``leaf``-typed value inside tuples, lists and dicts replaced by
    ``fn(value)``."""
    if isinstance(obj, leaf):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(map_leaves(o, fn, leaf) for o in obj)
    if isinstance(obj, list):
        return [map_leaves(o, fn, leaf) for o in obj]
    if isinstance(obj, dict):
        return {k: map_leaves(v, fn, leaf) for k, v in obj.items()}
    return obj


@dataclass(eq=False)
class Computed:
    """A tensor that ``forward()`` computes from parameters and constants only (a standardised
    convolution weight, a reshaped layer scale): :meth:`value` computes it again from the live
    parameters, so the weights read later follow training."""

    target: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    item: tuple[int, ...] = ()

    def value(self) -> torch.Tensor:
        ev = lambda c: c.value()  # noqa: E731
        args = map_leaves(self.args, ev, Computed)
        return pick(self.target(*args, **map_leaves(self.kwargs, ev, Computed)), self.item)


#: Calls a weight mixed from parameters by data (a dynamic convolution's
#: ``mm(attention, W.view(K, -1)).view(…)``) is computed again through (see :func:`computed`).
_MIXING = ("layout", "mul", "add", "pool", "unknown")


def computed(
    calls: list[Call], ref: Ref, memo: dict[Ref, Any] | None = None, mixed: bool = False
) -> Computed | torch.Tensor:
    """The recipe of constant call output ``ref`` (whose inputs are all constant calls), or
    the output itself for a tensor made like a data tensor (``torch.zeros_like(x)``: its one
    value when all are equal, a scalar whatever the batch).  ``mixed``: the recipe of a
    tensor mixed from parameters by data, computed again through data movement and arithmetic
    from the live parameters and the data's values in this pass (a dynamic convolution's
    kernel attention as the capture's images got it)."""
    memo = {} if memo is None else memo
    if ref not in memo:
        call = calls[ref.index]
        if any(calls[i].kind != "constant" for i in call.inputs) and not (
            mixed and _mixes(call) and _from_parameters(calls, call)
        ):
            v = pick(call.value, ref.item).detach()
            first = v.flatten()[:1]
            one = not mixed and first.numel() and bool((v == first).all())
            memo[ref] = first[0].clone() if one else v
            return memo[ref]
        sub = lambda r: computed(calls, r, memo, mixed)  # noqa: E731
        args, kwargs = map_leaves(call.args, sub, Ref), map_leaves(call.kwargs, sub, Ref)
        memo[ref] = Computed(call.target, args, kwargs, ref.item)
    return memo[ref]


def _mixes(call: Call) -> bool:
    """Whether a weight mixed by data can be computed again through ``call`` (a product of
    the data by a matrix of parameters counts, though it is a linear layer where a layer
    reads it)."""
    return call.kind in _MIXING or call.op in PRODUCTS


def _from_parameters(calls: list[Call], call: Call) -> bool:
    """Whether ``call`` reads a constant (a parameter) through data movement and arithmetic."""
    todo, seen = list(call.inputs), set()
    while todo:
        c = calls[todo.pop()]
        if c.kind == "constant":
            return True
        if _mixes(c) and c.index not in seen:
            seen.add(c.index)
            todo += c.inputs
    return False


def live(v: Any) -> Any:
    """A tensor argument as the model has it now (:class:`Computed` ones computed again)."""
    return v.value() if isinstance(v, Computed) else v


@dataclass
class Recording:
    """The calls of one forward pass: ``calls[0]`` is the input; ``output`` the logits' call."""

    calls: list[Call]
    output: Ref
    count: int  # numbered calls (the probe checks it takes as many)
    # call index -> (module, j): the call's output is what the j-th call of that module returns
    outputs: dict[int, tuple[nn.Module, int]] = field(default_factory=dict)
    calls_of: dict[int, int] = field(default_factory=dict)  # id(module) -> calls of it
    nested: set[int] = field(default_factory=set)  # ids of modules also called inside leaves

    def module_taps(self) -> dict[int, tuple[nn.Module, int, int]]:
        """Calls whose outputs a forward hook on one module can find: call index -> (module,
        how many calls of it come before, how many calls of it a pass makes).  A leaf module's
        call, or a function's result that a module returns (``return F.relu(x)``,
        ``return scale * x``).  Modules also called inside leaf modules are left out (a hook
        would see calls the count skips)."""
        return {
            i: (m, j, self.calls_of[id(m)])
            for i, (m, j) in self.outputs.items()
            if id(m) not in self.nested
        }


#: Images in the capture's batch: two, so that a ``x.squeeze()`` keeps the batch axis as it
#: does in every real batch (one image would squeeze it away).
CAPTURE_BATCH = 2


#: What a forward that expects other arguments than one image tensor raises in its own code
#: (``dict(images)``, a missing argument, ``inputs["image"]``); torch's shape errors are
#: RuntimeErrors.
_ARGUMENT_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)

_SIZE_ERRORS = ("too small", "greater than actual input size", "shapes cannot be multiplied")


def _hint(message: str, input_shape: tuple[int, ...], first_layer: bool) -> str:
    """A hint when a forward pass fails on the size of its input (a model built for 224-px
    images fed 32-px CIFAR-10, or the other way round), its first layer on the number of
    channels (a LeNet for MNIST's grey images), or on making CUDA tensors where there are
    none."""
    channels = re.search(r"to have (\d+) channels, but got (\d+) channels", message)
    if first_layer and channels and int(channels[2]) == input_shape[0]:
        return (
            f" — the model takes {channels[1]}-channel images and the data's have "
            f"{channels[2]}: analyse it on data like the data it was built for"
        )
    if "compiled with CUDA" in message or "no NVIDIA driver" in message:
        return (
            " — the model makes CUDA tensors in its own code (torch.cuda.FloatTensor, "
            "device='cuda'): analyse it on a machine with a GPU (--device cuda)"
        )
    if not any(s in message for s in _SIZE_ERRORS):
        return ""
    side = "x".join(str(n) for n in input_shape[1:])
    return (
        f" — is the model built for other images than {side}? resize them with "
        "--input-size (input_size= in Python), e.g. 224 for ImageNet models"
    )


def input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype that ``model`` takes its images in: its first floating-point parameter's (a
    model in half precision, such as airbench's, takes float16 images), else float32."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``nn.DataParallel`` / ``DistributedDataParallel`` wrappers (as CIFAR
    training scripts wrap it) and ``torch.compile``'s: its module paths are the model's own,
    without ``module.`` or ``_orig_mod.``, and its forward the eager one."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def record_calls(model: nn.Module, input_shape: tuple[int, ...]) -> Recording:
    """Run ``model`` once on zeros of shape ``(CAPTURE_BATCH, *input_shape)`` and record its
    calls."""
    if isinstance(model, torch.jit.ScriptModule):
        raise ModelError("TorchScript modules cannot be captured: pass the eager nn.Module")
    scripted = [n for n, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise ModelError(
            f"module {scripted[0]!r} is a TorchScript module (torch.jit.ScriptModule), which cannot "
            "be captured: make it a plain nn.Module (drop torch.jit.ScriptModule and "
            "@torch.jit.script_method) to analyse the model"
        )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros((CAPTURE_BATCH, *input_shape), device=device, dtype=input_dtype(model))
    was_training = model.training
    if any(nn.parameter.is_lazy(p) for p in model.parameters()):
        # lazy modules (nn.LazyConv2d …) make their weights in the first forward pass: not
        # one of the model's own calls
        model.eval()
        try:
            with torch.no_grad(), cuda_constructors_on_cpu(device):
                model(x)
        except Exception:
            pass  # the recorded pass below says what fails
        finally:
            model.train(was_training)
    session = _Session(model, capture=True)
    session.calls.append(Call(0, "input", "input", "input", None, (), {}, x))
    session.producer[id(x)] = Ref(0)
    session.count = 1
    model.eval()
    try:
        with torch.no_grad(), cuda_constructors_on_cpu(device), session:
            out = model(x)
    except ModelError:
        raise
    except Exception as e:
        inner = session.leaf or (session.stack[-1] if session.stack else "")
        where = f" (in {inner!r})" if inner else ""
        first = str(e).splitlines()[0] if str(e) else ""
        hint = _hint(first, input_shape, session.count == 1)
        if not inner and not hint and isinstance(e, _ARGUMENT_ERRORS):
            hint = (
                " — cnnvis calls forward(images) with one tensor (B, C, H, W): a forward that"
                " takes a dict or several inputs needs a small wrapper module"
            )
        raise ModelError(
            f"{type(model).__name__} fails on an input of shape {tuple(input_shape)}{where}: "
            f"{type(e).__name__}: {first}{hint}"
        ) from e
    finally:
        model.train(was_training)
    logits = _output_tensor(out)
    if logits is None or id(logits) not in session.producer:
        raise ModelError(
            f"{type(model).__name__}.forward() returns no tensor computed from its input"
        )
    return Recording(
        session.calls,
        session.producer[id(logits)],
        session.count,
        session.outputs,
        session.calls_of,
        session.nested,
    )


class TapSession:
    """Hands the outputs of chosen calls to ``on_tap(index, tensor)`` during forward passes.

    Two ways, the same result.  The first pass runs under the numbering of the capture
    (module hooks on every module plus a torch-function mode), which checks call by call that
    real images take the path the capture took.  After it, when every tap is the output of a
    leaf-module call (``modules``, from :meth:`Recording.module_taps`), forward hooks on the
    tapped modules alone find them and the rest of the forward pass runs as fast as without
    cnnvis_gl (a different path is then seen only as a different number of calls of a tapped
    module).  Otherwise (a tap is a function's result, e.g. ``torch.cat`` or ``F.relu``) every
    pass is numbered.

    A context manager: the hooks stay registered from ``__enter__`` to ``__exit__``, so that
    many batches pay for them once (:meth:`run` outside a ``with`` block registers and removes
    them around its one pass).

    Parameters
    ----------
    model:
        The captured model.
    taps:
        Call indices whose outputs are wanted.
    expected:
        Number of numbered calls of the captured forward pass (a different count means the
        forward took another path: an error).
    on_tap:
        Called as ``on_tap(index, output, args, kwargs)`` for each tap call.
    modules:
        :meth:`Recording.module_taps` of the capture, to tap by module hooks where possible.
    """

    def __init__(
        self,
        model: nn.Module,
        taps: set[int],
        expected: int,
        on_tap: Callable[[int, Any, tuple, dict], None],
        modules: dict[int, tuple[nn.Module, int, int]] | None = None,
    ) -> None:
        self.model = model
        self.taps = taps
        self.expected = expected
        self.on_tap = on_tap
        self._handles: list[Any] = []
        self._keep = False
        self._numbered_once = False
        # by module hooks: (id(module), occurrence) -> call index; calls expected per module
        self._by_module: dict[tuple[int, int], int] | None = None
        if modules is not None and taps <= modules.keys():
            self._by_module = {(id(modules[i][0]), modules[i][1]): i for i in taps}
            tapped = {id(modules[i][0]): modules[i][0] for i in taps}
            self._modules = list(tapped.values())
            self._want = {id(modules[i][0]): modules[i][2] for i in taps}
            self._seen: dict[int, int] = {}
        self._session = session = _Session(model, capture=False)

        def on_call(index: int, out: Any, args: tuple, kwargs: dict) -> None:
            if index in self.taps:
                self.on_tap(index, out, args, kwargs)

        session.on_call = on_call

    @property
    def by_module_hooks(self) -> bool:
        """Whether passes after the first find the taps by hooks on their modules alone."""
        return self._by_module is not None

    def _hook(self, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        j = self._seen.get(id(m), 0)
        self._seen[id(m)] = j + 1
        index = self._by_module.get((id(m), j))  # type: ignore[union-attr]
        if index is not None:
            self.on_tap(index, out, args, kwargs)

    def _detach(self) -> None:
        self._session.keep_hooks = False
        self._session.detach()
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> TapSession:
        self._keep = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self._keep = False
        self._detach()

    def run(self, x: torch.Tensor) -> Any:
        if self._by_module is not None and self._numbered_once:
            return self._run_hooked(x)
        session = self._session
        session.count, session.leaf_depth, session.stack, session.leaf = 1, 0, [], ""
        session.keep_hooks = self._keep
        with session:
            out = self.model(x)
        if session.count != self.expected:
            self._other_path(f"{session.count - 1} calls instead of {self.expected - 1}")
        self._numbered_once = True
        return logits_of(out)

    def _run_hooked(self, x: torch.Tensor) -> Any:
        self._seen = {}
        self._session.keep_hooks = False
        self._session.detach()
        if not self._handles:
            for m in self._modules:
                self._handles.append(m.register_forward_hook(self._hook, with_kwargs=True))
        try:
            out = self.model(x)
        finally:
            if not self._keep:
                self._detach()
        if self._seen != self._want:
            wrong = next(k for k in self._want if self._seen.get(k, 0) != self._want[k])
            m = next(m for m in self._modules if id(m) == wrong)
            self._other_path(
                f"{type(m).__name__} module called {self._seen.get(wrong, 0)} times instead of "
                f"{self._want[wrong]}"
            )
        return logits_of(out)

    def _other_path(self, detail: str) -> None:
        raise ModelError(
            f"the forward pass of {type(self.model).__name__} took a different path than when "
            f"its graph was captured ({detail}): data-dependent control flow in forward() is "
            "not supported"
        )


__all__ = [
    "FUNCTION_KINDS",
    "MODULE_KINDS",
    "NO_MOVE",
    "CAPTURE_BATCH",
    "Call",
    "Recording",
    "Ref",
    "TapSession",
    "function_name",
    "logits_of",
    "map_leaves",
    "pick",
    "module_kind",
    "record_calls",
    "unwrap",
]
