"""Start roadseg_ros's segmentation node on a camera topic (optionally with RViz).

    ros2 launch roadseg_ros roadseg.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info device:=cuda

The node reads its defaults from config/roadseg.yaml (``params_file``); ``weights``,
``device`` and ``precision`` given here override that file. Outputs appear under
``<namespace>/roadseg/`` (mask, overlay, color_mask, confidence, drivable_area,
drivable_grid) and /diagnostics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the node; its outputs appear under <namespace>/roadseg/."),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="Camera image topic (sensor_msgs/Image) the node segments."),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="CameraInfo of that camera (for the ground-plane outputs)."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("roadseg_ros"), "config", "roadseg.yaml"]),
            description="YAML file with the node's parameters."),
        DeclareLaunchArgument(
            "weights", default_value="",
            description="Checkpoint (.pt) to load; empty: the bundled default weights."),
        DeclareLaunchArgument(
            "device", default_value="auto",
            description="Where the network runs: auto, cpu, cuda or cuda:N."),
        DeclareLaunchArgument(
            "precision", default_value="fp32", choices=["fp32", "fp16", "bf16"],
            description="Network precision (fp16 needs CUDA)."),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=["true", "false"],
            description="Also start RViz with config/roadseg.rviz."),
    ]
    segmentation = Node(
        package="roadseg_ros",
        executable="segmentation_node",
        name="roadseg",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            # value_type=str: an empty argument (weights) stays "" instead of failing YAML typing.
            {
                "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "precision": ParameterValue(LaunchConfiguration("precision"), value_type=str),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("roadseg_ros"), "config", "roadseg.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, segmentation, rviz])
