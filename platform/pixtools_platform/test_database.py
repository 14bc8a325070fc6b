"""Database: private, encrypted PostgreSQL 16 with a secret password."""

from __future__ import annotations

from urllib.parse import urlsplit

from pixtools_platform.testing.harness import StackRun
from pixtools_platform.testing.values import is_secret

DB = "aws:rds/instance:Instance"


def database(run: StackRun):
    instances = run.of_type(DB)
    assert len(instances) == 1
    return instances[0]


def test_postgres_16_private_encrypted(stack_run: StackRun):
    inputs = database(stack_run).plain_inputs()
    assert inputs["engine"] == "postgres"
    assert inputs["engineVersion"].split(".")[0] == "16"
    assert inputs["storageEncrypted"] is True
    assert inputs["publiclyAccessible"] is False


def test_database_in_private_subnets(stack_run: StackRun):
    inputs = database(stack_run).plain_inputs()
    group = stack_run.named("aws:rds/subnetGroup:SubnetGroup", "-subnets")
    assert inputs["dbSubnetGroupName"] == group.outputs["name"]
    private = {
        s.id
        for s in stack_run.of_type("aws:ec2/subnet:Subnet")
        if "-private-" in s.name
    }
    assert set(group.plain_inputs()["subnetIds"]) == private


def test_database_guarded_by_db_group(stack_run: StackRun):
    inputs = database(stack_run).plain_inputs()
    db_group = stack_run.named("aws:ec2/securityGroup:SecurityGroup", "-db-sg")
    assert inputs["vpcSecurityGroupIds"] == [db_group.id]


def test_password_sent_as_secret(stack_run: StackRun):
    instance = database(stack_run)
    assert is_secret(instance.inputs["password"])
    password = stack_run.named(
        "random:index/randomPassword:RandomPassword", "-password"
    )
    assert instance.plain_inputs()["password"] == password.outputs["result"]["value"]
    assert len(instance.plain_inputs()["password"]) >= 32


def test_prod_database_protected(prod_run: StackRun):
    instance = database(prod_run)
    inputs = instance.plain_inputs()
    assert instance.protect is True
    assert inputs["deletionProtection"] is True
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["finalSnapshotIdentifier"]
    assert inputs["backupRetentionPeriod"] >= 7
    assert inputs["multiAz"] is True


def test_dev_database_disposable(dev_run: StackRun):
    instance = database(dev_run)
    inputs = instance.plain_inputs()
    assert instance.protect is False
    assert inputs["deletionProtection"] is False
    assert inputs["skipFinalSnapshot"] is True
    assert inputs["backupRetentionPeriod"] >= 1


def test_database_url_points_at_instance(stack_run: StackRun):
    output = stack_run.outputs["databaseUrl"]
    assert output.secret is True
    instance = database(stack_run)
    url = urlsplit(output.value)
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname == instance.outputs["address"]
    assert url.port == 5432
    assert url.username == instance.plain_inputs()["username"]
    assert url.password == instance.plain_inputs()["password"]
    assert url.path == "/" + instance.plain_inputs()["dbName"]
    assert "sslmode=require" in url.query


def test_parameter_group_forces_tls(stack_run: StackRun):
    group = stack_run.named("aws:rds/parameterGroup:ParameterGroup", "-params")
    inputs = group.plain_inputs()
    assert inputs["family"] == "postgres16"
    assert {"name": "rds.force_ssl", "value": "1"} in inputs["parameters"]
    assert (
        database(stack_run).plain_inputs()["parameterGroupName"]
        == group.outputs["name"]
    )
