"""Start roadseg_ros's segmentation node on a camera topic (optionally with RViz).

    ros2 launch roadseg_ros roadseg.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info device:=cuda

The node reads its parameters from config/roadseg.yaml (``params_file``). ``weights``,
``device``, ``precision``, ``camera_height_m`` and ``use_sim_time`` override that file
only when given here: their empty defaults mean "as the params file says". Outputs
appear under ``<namespace>/roadseg/`` (mask, overlay, color_mask, confidence,
drivable_area, drivable_grid) and /diagnostics.

``managed:=true`` starts the managed (lifecycle) variant, managed_segmentation_node, instead:
same parameters, topics and products; with ``autostart:=true`` (the default) it configures
and activates itself, with ``autostart:=false`` it waits unconfigured for a lifecycle
manager (Nav2's lifecycle_manager, ``ros2 lifecycle set /roadseg configure``).

This is the one place the segmentation node is launched: carla.launch.py includes this
file with its camera topics, ``camera_height_m`` and ``use_sim_time`` instead of
defining the node again.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

#: Launch arguments that override the params file's parameter of the same name when not empty,
#: with that parameter's type.
OVERRIDES = {"weights": str, "device": str, "precision": str, "camera_height_m": float, "use_sim_time": bool}
#: The managed node's: the same, and whether it brings itself up.
MANAGED_OVERRIDES = {**OVERRIDES, "autostart": bool}
#: The camera topics, for either node.
REMAPPINGS = [
    ("image", LaunchConfiguration("image_topic")),
    ("camera_info", LaunchConfiguration("camera_info_topic")),
]


def given_overrides(context: LaunchContext, types: dict[str, type]) -> dict[str, ParameterValue]:
    """The parameters the user set on the command line: empty arguments leave the params file's value.

    Typed as the parameter is, not guessed from the text: a weights path such as ``2024.pt``
    or a device ``0`` stays a string, a height ``2`` becomes the double the node declares.
    """
    values = {name: LaunchConfiguration(name).perform(context) for name in types}
    return {name: ParameterValue(value, value_type=types[name])
            for name, value in values.items() if value != ""}


def _segmentation(context: LaunchContext) -> list[Node]:
    """The node, built when the launch runs: only then are the given arguments known.

    The plain node unless ``managed:=true``; the managed one is a launch_ros ``LifecycleNode``
    (which needs ``name`` and ``namespace``), so launch's lifecycle events work on it.
    """
    return [Node(
        package="roadseg_ros",
        executable="segmentation_node",
        name="roadseg",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), given_overrides(context, OVERRIDES)],
        remappings=REMAPPINGS,
        condition=UnlessCondition(LaunchConfiguration("managed")),
    ), LifecycleNode(
        package="roadseg_ros",
        executable="managed_segmentation_node",
        name="roadseg",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), given_overrides(context, MANAGED_OVERRIDES)],
        remappings=REMAPPINGS,
        condition=IfCondition(LaunchConfiguration("managed")),
    )]


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
            description="Checkpoint (.pt) to load; empty: as the params file says (there: empty means the "
                        "bundled default weights)."),
        DeclareLaunchArgument(
            "device", default_value="",
            description="Where the network runs: auto, cpu, cuda or cuda:N; empty: as the params file says."),
        DeclareLaunchArgument(
            "precision", default_value="",
            description="Network precision, checked by the node (fp32, fp16 with CUDA, bf16); empty: as "
                        "the params file says."),
        DeclareLaunchArgument(
            "camera_height_m", default_value="",
            description="Height of the camera above the ground (m), for the ground-plane outputs; empty: as "
                        "the params file says."),
        DeclareLaunchArgument(
            "use_sim_time", default_value="", choices=["", "true", "false"],
            description="Follow /clock (a simulator or a played recording); empty: as the params file says."),
        DeclareLaunchArgument(
            "managed", default_value="false", choices=["true", "false"],
            description="Start managed_segmentation_node, the lifecycle (managed) node, instead of "
                        "segmentation_node."),
        DeclareLaunchArgument(
            "autostart", default_value="true", choices=["true", "false"],
            description="With managed:=true: the node configures and activates itself; false: it waits, "
                        "unconfigured, for a lifecycle manager."),
        DeclareLaunchArgument(
            "rviz", default_value="false", choices=["true", "false"],
            description="Also start RViz with config/roadseg.rviz."),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("roadseg_ros"), "config", "roadseg.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_segmentation), rviz])
