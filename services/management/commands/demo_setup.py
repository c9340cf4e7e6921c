"""Prepares the embedded demo for `make run`: an admin, a team, and the local kubesim cluster."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from clusters.actions import cluster_create, cluster_update
from clusters.models import Cluster
from clusters.tasks import sweep_gateways
from gatewayportal import apitokens
from gatewayportal.context import acting_as
from gatewayportal.models import ApiToken
from gatewayportal.roles import PLATFORM_GROUP
from services import actions
from services.models import Team

ADMIN = ("admin", "admin")
MEMBER = ("alice", "alice")


class Command(BaseCommand):
    help = (
        "Creates the demo admin, team, member and local kubesim cluster (idempotent), points the cluster at this "
        "run's kubesim, reconciles every gateway, and prints how to use them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kubesim-port", type=int, default=18443)
        parser.add_argument("--kubesim-token", default="demo-cluster-token")
        parser.add_argument("--portal-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--idp-groups", nargs="*", default=None, help="Identity-provider groups of the demo team (make run-sso)."
        )

    def handle(self, *args, kubesim_port: int, kubesim_token: str, portal_url: str, idp_groups=None, **options):
        User = get_user_model()
        with acting_as(name="demo_setup", source="cli"), transaction.atomic():
            admin, created = User.objects.get_or_create(
                username=ADMIN[0], defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                admin.set_password(ADMIN[1])
                admin.save()
            Group.objects.get_or_create(name=PLATFORM_GROUP)
            member, created = User.objects.get_or_create(username=MEMBER[0])
            if created:
                member.set_password(MEMBER[1])
                member.save()
            team = Team.objects.filter(slug="demo").first()
            if team is None:
                team = actions.team_save(
                    data={
                        "slug": "demo",
                        "name": "Demo team",
                        "namespaces": ["demo"],
                        "allowed_domains": ["demo.example.com"],
                        "allow_wildcards": False,
                        "members": [member],
                    }
                )
            if idp_groups is not None and team.idp_groups != sorted(idp_groups):
                team = actions.team_save(data={"idp_groups": sorted(idp_groups)}, team=team)
            address = f"http://127.0.0.1:{kubesim_port}"
            cluster = Cluster.objects.filter(name="local").first()
            if cluster is None:
                cluster_create(
                    name="local",
                    api_server=address,
                    token=kubesim_token,
                    labels={"env": "demo"},
                    ingress_gateway="istio-system/ingress-gateway",
                    egress_gateway="istio-system/egress-gateway",
                )
            else:
                # A new run may use another KUBESIM_PORT or token: follow it (a no-op, unaudited, when unchanged).
                cluster_update(cluster=cluster, api_server=address, token=kubesim_token)
            # Tokens are stored hashed: each run issues a fresh demo token (shown below) and drops the previous one.
            ApiToken.objects.filter(user=member, name="demo").delete()
            _, key = apitokens.issue(user=member, name="demo", expires_at=None)
        # kubesim starts empty on every run: put every service already in the database back now, not at the next sweep.
        with acting_as(name="demo_setup", source="cli"):
            sweep_gateways()
        body = (
            '{"name": "hello", "namespace": "demo", "hosts": ["hello.demo.example.com"], '
            '"port": 80, "protocol": "HTTP", "traffic_type": "ingress", "clusters": ["local"]}'
        )
        self.stdout.write(
            "\nGateway Portal demo is ready.\n"
            f"  Admin:    {portal_url}/admin/   (user {ADMIN[0]} / password {ADMIN[1]})\n"
            f"  API docs: {portal_url}/api/docs/\n"
            f"  Team member {MEMBER[0]} (team 'demo') API token: {key}\n\n"
            "Register a service on the local demo cluster:\n"
            f"  curl -sS -X POST {portal_url}/api/v1/gateway-services/ \\\n"
            f"    -H 'Authorization: Token {key}' -H 'Content-Type: application/json' \\\n"
            f"    -d '{body}'\n\n"
            f"Then see it land: curl -sS {portal_url}/api/v1/gateway-services/ -H 'Authorization: Token {key}'\n"
        )
