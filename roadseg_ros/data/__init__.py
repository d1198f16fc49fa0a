"""roadseg_ros.data"""
