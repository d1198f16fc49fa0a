"""CARLA support without ROS: label schemes (:mod:`.labels`), simulator connection and
clean-up (:mod:`.client`), pairing of two image streams by stamp (:mod:`.pairing`)."""
