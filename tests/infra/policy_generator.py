"""``infra/policies/generate.py`` loaded as a module (infra/ is deployment material, not a
package)."""

from __future__ import annotations

import importlib.util

from registry.config.settings import PROJECT_ROOT

POLICY_DIR = PROJECT_ROOT / "infra" / "policies"

_spec = importlib.util.spec_from_file_location("policy_generate", POLICY_DIR / "generate.py")
assert _spec and _spec.loader
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)
