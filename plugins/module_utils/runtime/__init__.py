# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container runtime: from a spec to a running container and back.

``spec`` builds the container's config, ``containers`` runs and records containers, ``spawn`` starts one (the
parent side and the monitor), ``init_sequence`` is its init up to ``execve`` (with ``rootfs``, ``users``,
``capabilities``, ``process``), ``supervisor`` keeps a detached one running (loaded by ``boot`` in its own
interpreter; ``boot.StartBundle`` loads a CLI start's modules), ``state`` holds its records, ``image`` reads one
image of the store for a start.

Import cost on the start path
-----------------------------
Three places start a fresh interpreter for one process: ``bin/dockerless run``, ``bin/dockerless exec`` and the
supervisor of a detached container. For ``dockerless run`` and ``exec`` imports are a large share of the whole
command, so the modules on those paths (``spec``, ``containers``, ``image``, ``spawn``, ``init_sequence``,
``rootfs``, ``users``, ``capabilities``, ``process``, ``state``, ``exec``, and ``records``, ``linux``, ``errors``,
``store_root``, ``image.layers.whiteouts``, ``cgroups.devices`` outside this folder) keep to these economies, and
they are the only modules that do. ``exec`` goes further: it reads the container's records through ``state`` alone and never
loads ``containers``, ``spec``, ``init_sequence`` or ``rootfs`` (``spawn`` imports ``init_sequence`` inside
``spawn()``, before its fork). The supervisor, which starts once per detached container, imports json and
signal plainly; its modules come by source, in ``supervisor.SUPERVISOR_MODULES``. The economies:

* records derive from ``records.Record``, not ``dataclasses`` (which brings inspect, ast, dis, tokenize: about a
  fifth of the CPU time of a start, measured);
* JSON goes through ``records.json_loads``/``json_dumps`` (``_json`` directly); ``json``, ``re``, ``signal``,
  ``hashlib`` are imported inside the function that needs them, when it is not on the start path: ``import
  re`` or ``import signal`` alone brings enum, functools and collections, a tenth of a start;
* the init's modules use ``_signal`` (the C module behind ``signal``: same functions and numbers, plain ints)
  and import at the top, never lazily: after ``pivot_root`` nothing can be imported;
* ``TYPE_CHECKING = False`` stands for ``typing.TYPE_CHECKING``;
* ``bin/dockerless run`` and ``exec`` load these modules (and the CLI's) from one file of compiled code, the start
  bundle (``boot.StartBundle``, in ``module_utils/__pycache__``), not through the import system module by
  module: the supervisor's loader idea, kept as a cache beside the ``.pyc`` files and checked against each source;
* the platform check of a stored image is ``image.reference``'s, which the start parses the name with anyway: not
  ``image.oci``, the OCI document parser.

The rest of the engine (the modules' other paths, pull, build, the registry client) uses the standard library
plainly. The tests that hold the line: ``test_runtime.py`` (a one-shot start imports no json, re, enum, signal
or ctypes), ``test_runtime_image.py`` and ``cli/test_cli_fast.py`` (what ``dockerless run`` and ``dockerless
exec`` import).
"""
