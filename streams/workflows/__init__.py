"""Durable workflows: plain async functions whose progress is journaled in Kafka (``App.workflow``)."""

from streams.workflows.breaker import Breaker
from streams.workflows.engine import WorkflowDefinition
from streams.workflows.replay import Gathered, NonDeterminismError, Step, Workflow

__all__ = ["Breaker", "Gathered", "NonDeterminismError", "Step", "Workflow", "WorkflowDefinition"]
