"""minigrad's Triton kernels (one module per op family). The only code here is a compatibility
shim for Triton's CPU interpreter, applied when TRITON_INTERPRET=1; GPU runs never touch it."""
import os


def _fix_interpreter_loop_bounds() -> None:
    """Let a runtime int kernel argument bound a `range(...)` loop in Triton's CPU interpreter.

    The interpreter keeps every scalar kernel argument (n_cols, n_rows, ...) as a one-element
    NumPy array, and before Triton 3.8 it turned one into a Python int with `int(array)`. NumPy
    2.4 refuses that ("only 0-dimensional arrays can be converted to Python scalars"), so any
    loop like `for start in range(0, n_cols, BLOCK_C)` failed under TRITON_INTERPRET=1 with
    Triton 3.6 (3.8 has the fix; 3.7 unchecked). We install the `__index__` that Triton 3.8
    itself uses (squeeze first): identical behaviour on a Triton that already has it. It goes
    through a private interpreter hook, hence the guards: if the hook is gone, this does nothing.
    Compiled GPU kernels never run this code.
    """
    try:
        from triton.runtime import interpreter
    except ImportError:                          # no triton: the kernels are unusable anyway
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_minigrad_fix", False):
        return

    def index(self):
        return int(self.handle.data.squeeze())

    def patch_lang_tensor(tensor, *rest):
        original(tensor, *rest)
        if rest:       # Triton 3.6 and 3.9 pass a scope that undoes every patch after the launch
            rest[0].set_attr(tensor, "__index__", index)
        else:
            tensor.__index__ = index

    patch_lang_tensor._minigrad_fix = True
    interpreter._patch_lang_tensor = patch_lang_tensor


if os.environ.get("TRITON_INTERPRET") == "1":
    _fix_interpreter_loop_bounds()
