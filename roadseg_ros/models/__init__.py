"""roadseg_ros.models"""
