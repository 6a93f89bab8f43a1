"""Write the Python API surface of the real TensorRT, cuda-python and pycuda bindings to small
JSON fixtures under tests/binding_api/, from which tests/fakes build API-faithful fakes.

    python scripts/binding_api_fixtures.py [--wheels DIR] [--out tests/binding_api]

Needs the package index (pip download) and a C compiler; nothing else from NVIDIA.

How the bindings load without NVIDIA's libraries
-------------------------------------------------
The binding wheels (`tensorrt-bindings` 8.6.1, `tensorrt-cu12-bindings` 10.x/11.x) install from
the package index; the libraries they link against (libnvinfer, libnvonnxparser, ...) do not.
The loader only needs, for each library the extension names (its DT_NEEDED entries), a file of
that soname, and somewhere among the loaded objects a definition of each undefined symbol the
extension binds. So, per wheel:

1. `readelf -d` lists the NVIDIA sonames the extension needs; `nm -D --undefined-only` lists
   the symbols it imports, and those not provided by the C/C++ runtime or Python are the
   libnvinfer entry points (9 to 12 factory functions such as createInferBuilder_INTERNAL; 8.6
   also needs the UFF/Caffe parser factories, C++-mangled).
2. One C file defines each of them as a function that prints its name and aborts: the
   introspection below never calls into TensorRT, and a call would be a bug to see at once.
   It is compiled once per soname (`gcc -shared -Wl,-soname,libnvinfer.so.10`) into a
   temporary folder.
3. A child Python with LD_LIBRARY_PATH on that folder imports the extracted wheel's package and
   walks it: every class (bases), method and static method with its parameters (parsed from
   pybind11's signature line, every overload), property (read-only or not), nested class, enum
   member with its value, and module-level function. Only names, parameters and enum values are
   kept: types and docstrings would make the fixtures large and are not what the fakes check.

cuda-python (`cuda.cudart` in 12.x before 13, `cuda.bindings.runtime` from 12.8) and cuda-bindings
13.x import without a driver (the driver library is opened at the first call), so they are
walked directly, in a child Python with the wheel on sys.path; enum members of cudaError_t are
kept with their values (the `(err, value)` convention is in every runtime call's return).

pycuda is published as source only and its extension needs the CUDA toolkit to compile, so it
cannot be imported here; its fixture lists the names the pycuda sources define (functions and
classes bound in src/wrapper/wrap_cudadrv.cpp and pycuda/driver.py), read with regular
expressions, and says so in its "source" field.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "binding_api"

# (fixture name, distribution, pip requirement, import name)
TENSORRT = [
    ("tensorrt-8.6", "tensorrt-bindings==8.6.1", "tensorrt_bindings"),
    ("tensorrt-10.3", "tensorrt-cu12-bindings==10.3.0", "tensorrt_bindings"),
    ("tensorrt-10.13", "tensorrt-cu12-bindings==10.13.3.9", "tensorrt_bindings"),
    ("tensorrt-11.4", "tensorrt-cu12-bindings==11.4.0.106", "tensorrt_bindings"),
]
CUDA = [
    ("cuda-python-12.6", "cuda-python==12.6.0", ["cuda.cudart"]),
    ("cuda-python-12.9", "cuda-bindings==12.9.0", ["cuda.cudart", "cuda.bindings.runtime"]),
    ("cuda-python-13.0", "cuda-bindings==13.0.3 cuda-pathfinder==1.3.0",
     ["cuda.bindings.runtime"]),
]
PYCUDA = ("pycuda", "pycuda==2025.1.2")
# Names the runtime calls; the fixture keeps the whole surface, the tests check these exist.
CUDA_RUNTIME_ENUMS = ("cudaError_t", "cudaMemcpyKind")
CUDA_RUNTIME_CLASSES = ("cudaDeviceProp",)


def download(requirement: str, wheels: Path, binary: bool = True) -> Path:
    """The wheel (or sdist) of `requirement` for CPython 3.11 on x86_64 Linux, from pip's index."""
    name = re.split(r"[=<>]", requirement)[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    found = [p for p in wheels.glob("*") if p.name.lower().startswith(f"{name}-{version}")]
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels)]
    if binary:
        command += ["--only-binary=:all:", "--python-version", "3.11",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64"]
    else:
        # pip prepares an sdist's metadata: without isolation it uses this Python's setuptools
        # and wheel instead of fetching them (run the script with the project's .venv).
        command += ["--no-binary=:all:", "--no-build-isolation"]
    subprocess.run([*command, requirement], check=True)
    return download(requirement, wheels, binary)


def extract(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            wheel.extractall(into)
    else:
        import tarfile

        with tarfile.open(archive) as sdist:
            sdist.extractall(into, filter="data")
    return into


# ----------------------------------------------------------------- stub libraries
def nvidia_imports(extension: Path) -> tuple[list[str], list[str]]:
    """(NVIDIA sonames the extension needs, the symbols it imports from them)."""
    dynamic = subprocess.run(["readelf", "-d", str(extension)], capture_output=True, text=True,
                             check=True).stdout
    sonames = [s for s in re.findall(r"Shared library: \[(.+?)\]", dynamic)
               if s.startswith("libnv")]
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(extension)],
                               capture_output=True, text=True, check=True).stdout
    symbols = []
    for line in undefined.splitlines():
        kind, name = line.split()[-2:]
        if kind == "U" and "@" not in name and _is_nvidia(name):
            symbols.append(name)
    return sonames, symbols


def _is_nvidia(symbol: str) -> bool:
    """Entry points of libnvinfer and its parsers: unversioned C factories (createInfer...,
    getPluginRegistry, initLibNvInferPlugins) or C++ names in an nv* namespace (8.6's UFF and
    Caffe parsers). Everything else the extension imports is versioned (glibc, libstdc++) or
    Python's own."""
    return bool(re.match(r"(create|get|init)[A-Z]\w*$", symbol)) or bool(
        re.match(r"_ZN\d+nv", symbol))


def build_stubs(sonames: list[str], symbols: list[str], folder: Path) -> None:
    """One shared library per soname, each defining every imported symbol as an abort."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>"]
    for symbol in symbols:
        lines.append(f'void *{symbol}(void) {{ fprintf(stderr, "stub {symbol} called\\n"); '
                     "abort(); }")
    source = folder / "nvstubs.c"
    source.write_text("\n".join(lines) + "\n")
    for soname in sonames:
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / soname),
                        f"-Wl,-soname,{soname}", str(source)], check=True)


# ----------------------------------------------------------------- walking a module
WALKER = textwrap.dedent(r'''
    import importlib, inspect, json, re, sys

    # Special methods that change what code can do with an object (int(handle), len(dims),
    # bytes(blob), with ...); the rest (__repr__, __eq__, ...) every object has.
    KEPT_DUNDERS = ("__init__", "__call__", "__len__", "__getitem__", "__setitem__", "__iter__",
                    "__enter__", "__exit__", "__int__", "__index__", "__bytes__", "__buffer__")

    def split_params(text):
        depth, current, parts = 0, "", []
        for ch in text:
            if ch in "([{<": depth += 1
            if ch in ")]}>": depth -= 1
            if ch == "," and depth == 0:
                parts.append(current); current = ""
            else:
                current += ch
        if current.strip(): parts.append(current)
        return [p.strip() for p in parts]

    def pybind_overloads(name, doc):
        """Parameter lists ('name' or 'name=default') of each pybind11 signature line."""
        found = []
        for line in (doc or "").splitlines():
            line = re.sub(r"^\d+\. ", "", line.strip())
            if not line.startswith(name + "("):
                continue
            inner, depth = "", 0
            for ch in line[len(name):]:
                if ch == "(": depth += 1
                if ch == ")": depth -= 1
                inner += ch
                if depth == 0: break
            params = []
            for part in split_params(inner[1:-1]):
                if part in ("*args", "**kwargs"):
                    params.append(part); continue
                # pybind11: "flags: int = 0"; Cython (cuda-python): "int device", "size_t count"
                pname = part.split(":")[0].split("=")[0].strip().split()[-1].lstrip("*&")
                default = part.split("=", 1)[1].strip() if "=" in part else None
                params.append(pname if default is None else f"{pname}={default}")
            found.append(params)
        overloaded = [p for p in found if p != ["*args", "**kwargs"]]
        return overloaded or found

    def params_of(name, fn):
        if inspect.isfunction(fn) or inspect.ismethod(fn):
            sig = inspect.signature(fn)
            out = []
            for p in sig.parameters.values():
                text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
                if p.default is not p.empty: text += "=" + repr(p.default)
                out.append(text)
            return [out]
        return pybind_overloads(name, getattr(fn, "__doc__", "")) or [["*args", "**kwargs"]]

    def is_enum(obj):
        return isinstance(obj, type) and hasattr(obj, "__members__") and not issubclass(obj, dict)

    def enum_record(obj):
        members = {}
        for k, v in obj.__members__.items():
            try: members[k] = int(v)
            except Exception: members[k] = str(v)
        return members

    def class_record(cls, path, enums, classes, module_name):
        rec = {"bases": [b.__name__ for b in cls.__bases__ if b.__name__ not in
                         ("object", "pybind11_object")],
               "methods": {}, "static": {}, "properties": {}, "nested": {}, "values": {}}
        for name, raw in sorted(vars(cls).items()):
            if name.startswith("__") and name not in KEPT_DUNDERS:
                continue
            if isinstance(raw, property):
                rec["properties"][name] = {"readonly": raw.fset is None}
            elif type(raw).__name__ in ("getset_descriptor", "member_descriptor"):
                # Cython attributes: whether they can be set is not visible from Python
                rec["properties"][name] = {"readonly": None}
            elif isinstance(raw, type):
                child = f"{path}.{name}"
                rec["nested"][name] = child
                walk_type(raw, child, enums, classes, module_name)
            elif isinstance(raw, staticmethod) or \
                    type(raw).__name__ == "builtin_function_or_method":
                fn = raw.__func__ if isinstance(raw, staticmethod) else raw
                rec["static"][name] = params_of(name, fn)
            elif callable(raw) or type(raw).__name__ in ("instancemethod",):
                overloads = params_of(name, raw)
                rec["methods"][name] = [o[1:] if o and o[0] == "self" else o for o in overloads]
            elif type(type(raw)).__name__ == "pybind11_type" or is_enum(type(raw)):
                rec["values"][name] = [type(raw).__qualname__, getattr(raw, "name", str(raw))]
        return rec

    def walk_type(obj, path, enums, classes, module_name):
        if is_enum(obj):
            enums[path] = enum_record(obj)
        else:
            classes[path] = class_record(obj, path, enums, classes, module_name)

    def walk(module_name):
        mod = importlib.import_module(module_name)
        enums, classes, functions, values, constants = {}, {}, {}, {}, {}
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") and name != "__version__":
                continue
            if inspect.ismodule(obj):
                continue
            # Only what the package defines: not numpy or ctypes names it imports.
            home = str(getattr(obj, "__module__", "") or "").split(".")[0]
            if home not in (module_name.split(".")[0], "None", ""):
                continue
            if isinstance(obj, type):
                walk_type(obj, name, enums, classes, module_name)
            elif callable(obj):
                functions[name] = params_of(name, obj)
            elif is_enum(type(obj)):
                values[name] = [type(obj).__qualname__, getattr(obj, "name", str(obj))]
            elif isinstance(obj, (int, float, str)):
                constants[name] = obj
        return {"module": module_name, "functions": functions, "classes": classes,
                "enums": enums, "values": values, "constants": constants}

    print(json.dumps([walk(m) for m in sys.argv[1:]]))
''')


def walk(module_names: list[str], path: Path, library_path: Path | None) -> list[dict]:
    env = {"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"}
    if library_path is not None:
        env["LD_LIBRARY_PATH"] = str(library_path)
    done = subprocess.run([sys.executable, "-c", WALKER, *module_names], capture_output=True,
                          text=True, env=env, cwd=path)
    if done.returncode != 0:
        raise SystemExit(f"walking {module_names} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def write(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT / name}.json ({(OUT / f'{name}.json').stat().st_size // 1024} KiB)")


def tensorrt_fixture(requirement: str, module: str, wheels: Path, scratch: Path) -> dict:
    folder = extract(download(requirement, wheels), scratch / requirement)
    extension = next(folder.glob(f"{module}/tensorrt*.so"))
    sonames, symbols = nvidia_imports(extension)
    stubs = scratch / f"stubs-{requirement}"
    stubs.mkdir()
    build_stubs(sonames, symbols, stubs)
    [surface] = walk([module], folder, stubs)
    surface["module"] = "tensorrt"
    version = re.search(r'__version__ = "(.+?)"', (folder / module / "__init__.py").read_text())
    surface["version"] = version.group(1) if version else requirement.split("==")[1]
    surface["source"] = (f"{requirement}: walked with stub {', '.join(sonames)} defining "
                         f"{len(symbols)} symbols ({', '.join(symbols)})")
    return surface


def cuda_fixture(requirements: str, modules: list[str], wheels: Path, scratch: Path) -> dict:
    """`requirements`: the binding first, then what it imports (13.x: cuda-pathfinder)."""
    requirement = requirements.split()[0]
    folder = scratch / requirement
    for each in requirements.split():
        extract(download(each, wheels), folder)
    surfaces = walk(modules, folder, None)
    data: dict = {"source": f"{requirement}: imported without a driver", "modules": {}}
    for surface in surfaces:
        data["modules"][surface["module"]] = trim_cuda(surface)
    data["version"] = requirement.split("==")[1]
    return data


def trim_cuda(surface: dict) -> dict:
    """Every function with its parameters and every class with its methods; enum members only
    of the enums the project reads (cudaError_t, cudaMemcpyKind), properties only of the class
    it reads (cudaDeviceProp): the whole runtime surface is several hundred KiB."""
    surface["enums"] = {k: v for k, v in surface["enums"].items() if k in CUDA_RUNTIME_ENUMS}
    for name, record in surface["classes"].items():
        if name not in CUDA_RUNTIME_CLASSES:
            record["properties"] = {}
    surface["classes"] = {k: v for k, v in surface["classes"].items() if "." not in k}
    surface["values"] = {}
    return surface


def pycuda_fixture(requirement: str, wheels: Path, scratch: Path) -> dict:
    folder = extract(download(requirement, wheels, binary=False), scratch / requirement)
    root = next(folder.glob("pycuda-*"))
    wrapper = (root / "src" / "wrapper" / "wrap_cudadrv.cpp").read_text(errors="replace")
    driver = (root / "pycuda" / "driver.py").read_text(errors="replace")
    functions = set(re.findall(r"DEF_SIMPLE_FUNCTION(?:_WITH_ARGS)?\(\s*(\w+)", wrapper))
    functions |= set(re.findall(r'py::def\("(\w+)"', wrapper))
    functions |= set(re.findall(r"^def (\w+)\(", driver, flags=re.M))
    classes: dict[str, set[str]] = {}
    # Boost.Python: `py::class_<...>("Name", ...)` then chained .def("method", ...) calls.
    for chunk in wrapper.split("py::class_<")[1:]:
        name = re.search(r'"(\w+)"', chunk)
        if name is None:
            continue
        body = re.split(r"py::def\(|DEF_SIMPLE_FUNCTION", chunk)[0]
        members = re.findall(r'\.(?:def|add_property|def_readonly|def_readwrite|staticmethod)'
                             r'\(\s*"(\w+)"', body)
        members += re.findall(r"\.DEF_SIMPLE_(?:METHOD|RO_MEMBER)(?:_WITH_ARGS)?\(\s*(\w+)",
                              body)
        classes.setdefault(name.group(1), set()).update(members)
    # driver.py adds methods in Python: `Device.compute_capability = _device_compute_capability`
    for cls, member in re.findall(r"^(\w+)\.(\w+) = ", driver, flags=re.M):
        classes.setdefault(cls, set()).add(member)
    return {"source": f"{requirement}: names read from src/wrapper/wrap_cudadrv.cpp and "
                      "pycuda/driver.py (the sdist cannot be compiled without the CUDA toolkit)",
            "version": requirement.split("==")[1], "module": "pycuda.driver",
            "functions": sorted(functions),
            "classes": {k: sorted(v) for k, v in sorted(classes.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=None,
                        help="folder of downloaded wheels to reuse (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="binding-api-") as tmp:
        scratch = Path(tmp)
        wheels = args.wheels or scratch / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        for name, requirement, module in TENSORRT:
            write(name, tensorrt_fixture(requirement, module, wheels, scratch))
        for name, requirement, modules in CUDA:
            write(name, cuda_fixture(requirement, modules, wheels, scratch))
        write(PYCUDA[0], pycuda_fixture(PYCUDA[1], wheels, scratch))


if __name__ == "__main__":
    main()
