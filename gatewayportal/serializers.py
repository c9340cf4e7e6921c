"""Serializer plumbing every app's API shares."""

from __future__ import annotations

from rest_framework import serializers


class StrictFieldsMixin:
    """Unknown fields are refused, not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}
            read_only = {name for name, field in self.fields.items() if field.read_only}
            unknown = sorted(set(data) - known - read_only)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Accepted fields: {', '.join(sorted(known))}."] for name in unknown}
                )
        return super().to_internal_value(data)
