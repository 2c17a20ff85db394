"""Identity (Keystone v3 subset): users, projects, roles, tokens and the policy."""
from appliance.identity.policy import AuthContext, enforce
from appliance.identity.service import IdentityService

__all__ = ["AuthContext", "IdentityService", "enforce"]
