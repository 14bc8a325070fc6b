"""Pulumi components that deploy PixTools to AWS on a K3s cluster.

Each module holds one ComponentResource for one concern (network, database, storage,
registry, identity, configuration, cluster, workloads). The program in
``pulumi/__main__.py`` reads the stack configuration and wires them together.
"""
