"""Durable workflows: plain async functions whose progress is journaled in Kafka (``App.workflow``)."""

from streams.workflows.engine import WorkflowDefinition
from streams.workflows.replay import NonDeterminismError, Step, Workflow

__all__ = ["NonDeterminismError", "Step", "Workflow", "WorkflowDefinition"]
