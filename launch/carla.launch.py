"""Road segmentation on a CARLA ego vehicle, scored live against CARLA's ground truth.

    ros2 launch roadseg_ros carla.launch.py town:=Town10HD_Opt rviz:=true

Needs a running CARLA simulator (``host``/``port``). Two routes to get its cameras into
ROS 2, chosen by ``use_official_bridge`` (auto: the official one when installed):

1. the official ``carla_ros_bridge`` (ROS 2 Foxy only): its
   ``carla_ros_bridge_with_example_ego_vehicle.launch.py`` is included with host, port,
   town, timeout, synchronous_mode and fixed_delta_seconds passed through;
2. otherwise roadseg_ros's own ``carla_bridge`` node (any ROS 2 distribution; needs
   ``pip install carla`` matching the simulator), which spawns an ego vehicle on
   autopilot with an RGB and a semantic camera under the same topic names and encodings.

Either way the segmentation node (roadseg.launch.py, included with the camera topics,
the 2 m camera height and sim time) reads ``/carla/ego_vehicle/rgb_front/image`` and the
``carla_evaluator`` compares its ``/roadseg/mask`` with
``/carla/ego_vehicle/semantic_segmentation_front/image`` (CityScapes palette), publishing
running IoU / precision / recall on ``/carla_evaluator/metrics``, counting as drivable the
classes the model declares (latched on ``/roadseg/classes``), whatever its taxonomy.

When roadseg_ros's ``carla_bridge`` exits (no simulator reachable, the simulator quit),
the launch shuts down instead of leaving the other nodes waiting.
"""

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

#: Topics of the ego vehicle's front cameras (official bridge names; carla_bridge uses the same).
RGB_IMAGE = "/carla/ego_vehicle/rgb_front/image"
RGB_INFO = "/carla/ego_vehicle/rgb_front/camera_info"
SEMANTIC_IMAGE = "/carla/ego_vehicle/semantic_segmentation_front/image"
#: Height (m) at which both bridges mount the front cameras.
CAMERA_HEIGHT_M = "2.0"


def _official_bridge_installed() -> bool:
    try:
        get_package_share_directory("carla_ros_bridge")
    except PackageNotFoundError:
        return False
    return True


def _bridge(context: LaunchContext):
    """The CARLA -> ROS 2 bridge of the chosen route (decided when the launch runs)."""
    choice = LaunchConfiguration("use_official_bridge").perform(context)
    installed = _official_bridge_installed()
    if choice == "true" and not installed:
        raise RuntimeError("use_official_bridge:=true but the carla_ros_bridge package is not installed "
                           "(it exists for ROS 2 Foxy only); use use_official_bridge:=false for "
                           "roadseg_ros's own carla_bridge")
    if choice == "true" or (choice == "auto" and installed):
        # synchronous_mode is not an argument of the example launch file itself, but the
        # carla_ros_bridge.launch.py it includes reads it from the shared launch configuration.
        official = IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([
                FindPackageShare("carla_ros_bridge"),
                "carla_ros_bridge_with_example_ego_vehicle.launch.py"])),
            launch_arguments={
                "host": LaunchConfiguration("host"),
                "port": LaunchConfiguration("port"),
                "town": LaunchConfiguration("town"),
                "timeout": LaunchConfiguration("timeout"),
                "synchronous_mode": LaunchConfiguration("synchronous_mode"),
                "fixed_delta_seconds": LaunchConfiguration("fixed_delta_seconds"),
            }.items(),
        )
        return [LogInfo(msg="roadseg_ros: using the official carla_ros_bridge"), official]
    own = Node(
        package="roadseg_ros",
        executable="carla_bridge",
        name="carla_bridge",
        output="screen",
        emulate_tty=True,
        parameters=[{
            "host": ParameterValue(LaunchConfiguration("host"), value_type=str),
            "port": ParameterValue(LaunchConfiguration("port"), value_type=int),
            "timeout_s": ParameterValue(LaunchConfiguration("timeout"), value_type=float),
            "town": ParameterValue(LaunchConfiguration("town"), value_type=str),
            "synchronous_mode": ParameterValue(LaunchConfiguration("synchronous_mode"), value_type=bool),
            "fixed_delta_seconds": ParameterValue(LaunchConfiguration("fixed_delta_seconds"),
                                                  value_type=float),
            "role_name": "ego_vehicle",
        }],
    )
    # Without its bridge the graph only waits (no simulator, wrong port, the simulator quit):
    # end the whole launch when the bridge exits, whatever its status, rather than leave the
    # segmentation node and the evaluator running until Ctrl-C.
    bridge_gone = RegisterEventHandler(OnProcessExit(target_action=own, on_exit=[
        LogInfo(msg="roadseg_ros: carla_bridge exited; shutting the launch down"),
        Shutdown(reason="carla_bridge exited"),
    ]))
    return [LogInfo(msg="roadseg_ros: carla_ros_bridge not used; starting roadseg_ros carla_bridge"), own,
            bridge_gone]


def _segmentation() -> GroupAction:
    """The segmentation node on the RGB camera: roadseg.launch.py, the one definition of that node.

    Scoped in a group: without it the arguments set for the included file (``rviz:=false``
    among them) would stay set for the rest of this file and switch off its own RViz.
    """
    roadseg = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([
            FindPackageShare("roadseg_ros"), "launch", "roadseg.launch.py"])),
        launch_arguments={
            "namespace": "",
            "image_topic": RGB_IMAGE,
            "camera_info_topic": RGB_INFO,
            "params_file": LaunchConfiguration("params_file"),
            "weights": LaunchConfiguration("weights"),
            "device": LaunchConfiguration("device"),
            "camera_height_m": CAMERA_HEIGHT_M,
            "use_sim_time": "true",
            "rviz": "false",          # this file starts its own RViz, on sim time
        }.items(),
    )
    return GroupAction([roadseg], scoped=True)


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("host", default_value="localhost", description="CARLA simulator host."),
        DeclareLaunchArgument("port", default_value="2000", description="CARLA simulator RPC port."),
        DeclareLaunchArgument("town", default_value="",
                              description="Map to load (e.g. Town10HD_Opt); empty: keep the loaded one."),
        DeclareLaunchArgument("timeout", default_value="10.0",
                              description="Seconds to wait for the simulator before giving up."),
        DeclareLaunchArgument("synchronous_mode", default_value="true", choices=["true", "false"],
                              description="Run CARLA in synchronous mode (the bridge ticks the world)."),
        DeclareLaunchArgument("fixed_delta_seconds", default_value="0.05",
                              description="Simulation time step in synchronous mode (s)."),
        DeclareLaunchArgument("use_official_bridge", default_value="auto", choices=["auto", "true", "false"],
                              description="auto: the official carla_ros_bridge when installed, else "
                                          "roadseg_ros's carla_bridge; true/false force one."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("roadseg_ros"), "config", "roadseg.yaml"]),
            description="YAML file with the segmentation node's parameters."),
        DeclareLaunchArgument("weights", default_value="",
                              description="Checkpoint (.pt); empty: as the params file says."),
        DeclareLaunchArgument("device", default_value="",
                              description="Where the network runs: auto, cpu, cuda or cuda:N; empty: as the "
                                          "params file says."),
        DeclareLaunchArgument("carla_labels", default_value="palette",
                              description="How the semantic images encode CARLA's labels (checked by "
                                          "carla_evaluator): palette (CityScapes colours, both bridges), "
                                          "pre_0914 or post_0914 (raw ids of CARLA <0.9.14 / >=0.9.14)."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start RViz with config/roadseg.rviz."),
    ]
    evaluator = Node(
        package="roadseg_ros",
        executable="carla_evaluator",
        name="carla_evaluator",
        output="screen",
        emulate_tty=True,
        parameters=[{
            "carla_labels": ParameterValue(LaunchConfiguration("carla_labels"), value_type=str),
            "use_sim_time": True,
        }],
        # drivable classes: the model's own, latched by the segmentation node on ~/classes
        remappings=[("mask", "/roadseg/mask"), ("semantic", SEMANTIC_IMAGE), ("classes", "/roadseg/classes")],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("roadseg_ros"), "config", "roadseg.rviz"])],
        parameters=[{"use_sim_time": True}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_bridge), _segmentation(), evaluator, rviz])
