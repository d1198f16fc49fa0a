"""pip-installable view of roadseg_ros: the ROS-free engine, training and tools.

The ROS 2 package itself is built with colcon (build type ament_cmake, see
CMakeLists.txt), which also generates the message classes. ``pip install -e .`` gives
the training, evaluation, inference and export tools without a ROS installation.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
PACKAGE_NAME = "roadseg_ros"


def _version() -> str:
    """Read the version from package.xml, the single source of truth."""
    text = (HERE / "package.xml").read_text()
    return re.search(r"<version>([^<]+)</version>", text).group(1)


CONSOLE_SCRIPTS = [
    "segmentation_node=roadseg_ros.nodes.segmentation_node:main",
    "managed_segmentation_node=roadseg_ros.nodes.managed_segmentation_node:main",
    "camera_source=roadseg_ros.nodes.camera_source:main",
    "recorder=roadseg_ros.nodes.recorder:main",
    "carla_bridge=roadseg_ros.nodes.carla_bridge:main",
    "carla_evaluator=roadseg_ros.nodes.carla_evaluator:main",
    "roadseg-demo=roadseg_ros.tools.demo:main",
    "roadseg-train=roadseg_ros.tools.train:main",
    "roadseg-eval=roadseg_ros.tools.evaluate:main",
    "roadseg-infer=roadseg_ros.tools.infer:main",
    "roadseg-export=roadseg_ros.tools.export:main",
    "roadseg-carla-collect=roadseg_ros.tools.carla_collect:main",
    "roadseg-quantize=roadseg_ros.tools.quantize:main",
]

setup(
    name=PACKAGE_NAME,
    version=_version(),
    description="Road segmentation for ROS 2 (FCN-8s, PSPNet, real-time models) with training tools",
    packages=find_packages(include=[PACKAGE_NAME, f"{PACKAGE_NAME}.*"]),
    package_data={PACKAGE_NAME: ["weights/*.pt", "weights/*.int8.npz", "config/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "opencv-python-headless", "pyyaml", "tqdm", "torch", "torchvision", "rosbags",
                      "openvino"],
    extras_require={"train": ["tensorboard"], "export": ["onnx", "onnxruntime"], "quantize": ["nncf"],
                    "carla": ["carla"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    license="Apache-2.0",
)
