"""/v1/datasets: targets against accepted records per category, and top-ups on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from synth.api.deps import Conn, JobReports, Tenant
from synth.api.errors import ERROR_RESPONSES, ErrorBody, not_found
from synth.api.reports import Reports
from synth.api.schemas import CategoryPlanView, CategoryTarget, DatasetPage, DatasetView, TopupView
from synth.topups.coverage import CategoryCoverage, measure
from synth.topups.dataset import Dataset, DatasetNotFoundError, find, names
from synth.topups.topup import TopupOutcome, TopupResult, in_flight, topup

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such dataset for this key"}}


@router.get("", response_model=DatasetPage)
def list_datasets(conn: Conn, reports: JobReports, tenant: Tenant) -> DatasetPage:
    """Every dataset of the tenant with its coverage."""
    found = [_find(conn, tenant, name) for name in names(conn, tenant)]
    return DatasetPage(datasets=[dataset_view(conn, reports, dataset) for dataset in found])


@router.get("/{name}", response_model=DatasetView, responses=NOT_FOUND)
def get_dataset(name: str, conn: Conn, reports: JobReports, tenant: Tenant) -> DatasetView:
    """Targets against accepted records per category, across every run of the dataset."""
    return dataset_view(conn, reports, _find(conn, tenant, name))


@router.post(
    "/{name}/topup",
    response_model=TopupView,
    responses={**NOT_FOUND, 202: {"model": TopupView, "description": "A round was submitted"}},
)
def topup_dataset(
    name: str,
    conn: Conn,
    tenant: Tenant,
    dry_run: Annotated[bool, Query(description="Size the round, submit nothing.")] = False,
) -> JSONResponse:
    """Sizes the next round from each thin category's deficit and yield, and submits it (202), unless the
    dataset is full, still has a run in flight, or is being topped up already (200, with why)."""
    _find(conn, tenant, name)
    result = topup(conn, tenant, name, dry_run=dry_run)
    status = 202 if result.outcome is TopupOutcome.SUBMITTED else 200
    return JSONResponse(topup_view(result).model_dump(mode="json"), status_code=status)


def _find(conn: Conn, tenant: str, name: str) -> Dataset:
    try:
        return find(conn, tenant, name)
    except DatasetNotFoundError:
        raise not_found("dataset") from None


def dataset_view(conn: Conn, reports: Reports, dataset: Dataset) -> DatasetView:
    coverage = measure(dataset)
    settings = dataset.settings
    return DatasetView(
        name=dataset.name,
        targets=[_target(c) for name, c in coverage.categories.items() if name in dataset.targets],
        runs=len(dataset.runs),
        rounds=dataset.rounds,
        in_flight=in_flight(conn, dataset, reports.snapshot(conn)),
        schedule=settings.schedule,
        max_cost_usd=settings.max_cost_usd,
        margin=settings.margin,
        prior_acceptance=settings.prior_acceptance,
    )


def _target(category: CategoryCoverage) -> CategoryTarget:
    tried = category.overall
    return CategoryTarget(
        category=category.category,
        target=category.target,
        accepted=category.accepted,
        deficit=category.deficit,
        coverage=min(1.0, category.accepted / category.target) if category.target else 1.0,
        rejected=category.rejected,
        failed=category.failed,
        rejected_by_reason=dict(category.rejected_by_reason.most_common()),
        acceptance_rate=tried.accepted / tried.items if tried.items else None,
    )


def topup_view(result: TopupResult) -> TopupView:
    data = result.as_dict()
    data["categories"] = [CategoryPlanView(**c) for c in data["categories"]]
    return TopupView(**data)
