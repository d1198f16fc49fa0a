"""ROS 2 nodes: thin rclpy adapters over the ROS-free engine."""
