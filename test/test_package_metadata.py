"""package.xml, setup.py, CMakeLists.txt and the colcon install agree.

Name, version and executables are written in several places (ROS needs package.xml and
CMake, pip needs setup.py); these tests keep them from drifting apart.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_xml():
    from catkin_pkg.package import parse_package

    return parse_package(str(ROOT / "package.xml"))  # validates format 3 and the maintainer e-mail


def setup_py_literals() -> dict:
    """The name constant and console scripts of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    values = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in {"PACKAGE_NAME", "CONSOLE_SCRIPTS"}:
                values[name] = ast.literal_eval(node.value)
    return values


def cmake_executables() -> list[str]:
    text = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(ROADSEG_EXECUTABLES(.*?)\)", text, re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


def test_names_agree() -> None:
    pkg = package_xml()
    assert pkg.name == "roadseg_ros"
    assert setup_py_literals()["PACKAGE_NAME"] == pkg.name
    assert re.search(r"project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text()).group(1) == pkg.name
    assert (ROOT / "resource" / pkg.name).is_file()
    assert (ROOT / pkg.name / "__init__.py").is_file()


def test_versions_agree() -> None:
    import roadseg_ros

    pkg = package_xml()
    assert roadseg_ros.__version__ == pkg.version
    # setup.py reads the version from package.xml; check that it really does.
    assert "_version()" in (ROOT / "setup.py").read_text()


def test_build_type_and_message_generation() -> None:
    pkg = package_xml()
    assert pkg.package_format == 3
    assert [e.content for e in pkg.exports if e.tagname == "build_type"] == ["ament_cmake"]
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for msg in sorted((ROOT / "msg").glob("*.msg")):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not passed to rosidl_generate_interfaces"


def test_executables_agree() -> None:
    assert sorted(setup_py_literals()["CONSOLE_SCRIPTS"]) == sorted(cmake_executables())


@pytest.mark.parametrize("entry", cmake_executables())
def test_entry_point_targets_exist(entry: str) -> None:
    name, target = entry.split("=")
    module, func = target.split(":")
    mod = importlib.import_module(module)
    assert callable(getattr(mod, func, None)), f"{name}: {module} has no function {func}"


def test_colcon_install_matches() -> None:
    """The build installed the same version, every executable, and the generated message."""
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    prefix = Path(get_package_prefix("roadseg_ros"))
    share = Path(get_package_share_directory("roadseg_ros"))
    from catkin_pkg.package import parse_package

    assert parse_package(str(share / "package.xml")).version == package_xml().version
    for entry in cmake_executables():
        exe = prefix / "lib" / "roadseg_ros" / entry.split("=")[0]
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} not installed as an executable"
    for sub in ("launch", "config"):
        for src in sorted((ROOT / sub).iterdir()):
            if src.is_file():
                assert (share / sub / src.name).is_file(), f"{sub}/{src.name} is not installed"
    from roadseg_ros.msg import DrivableArea

    assert "free_distance_ahead" in DrivableArea.get_fields_and_field_types()
