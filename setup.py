"""Build step that carries the top-level templates/, editions/ and audiences/ into the wheel.

Those folders stay where a team edits them, and git keeps one copy of each file: at build time
they are copied into the package as `pipeline/bundled/`, where `pipeline.project` finds them once
installed. An editable install skips the copy and reads the checkout's folders directly.
Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# Repository folder -> the files of it the installed CLI needs (its sample edition, audience, reader models).
BUNDLED = {
    "templates": ("**/*.j2", "sections/*.yaml"),
    "editions": ("*.yaml", "README.md"),
    "audiences": ("sample.csv", "reader-models/*.yaml", "reader-models/README.md"),
}


class BuildPyWithDefaults(build_py):
    """`build_py` that also copies the packaged defaults into `pipeline/bundled/` of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself (pipeline.project.packaged_defaults)
        target = Path(self.build_lib) / "pipeline" / "bundled"
        copied = 0
        for folder, patterns in BUNDLED.items():
            for pattern in patterns:
                for source in sorted((HERE / folder).glob(pattern)):
                    if source.is_file():
                        destination = target / source.relative_to(HERE)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(source, destination)
                        copied += 1
        if not (target / "templates" / "layout.mjml.j2").is_file() or not (target / "editions" / "topics.yaml").is_file():
            # A wheel without them installs a CLI that cannot render anything: fail the build instead.
            raise SystemExit(f"packaged defaults missing: templates/ and editions/ must be beside {HERE / 'setup.py'}")
        print(f"copied {copied} default files into {target}")


setup(cmdclass={"build_py": BuildPyWithDefaults})
