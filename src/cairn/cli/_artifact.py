"""``cairn artifact ...``: put, get, list, diff, alias and delete versions (like ``wandb artifact``)."""

from __future__ import annotations

import click

from cairn import sdk
from cairn.cli._output import emit_json, emit_json_list, emit_table, json_option
from cairn.sdk import format_size as size
from cairn.sdk import short_digest


@click.group()
def artifact() -> None:
    """Put, get, list, compare, alias and delete artifact versions."""


@artifact.command()
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option(
    "-n",
    "--name",
    help="[[entity/]project/]name of the artifact (default: PATH's base name, in $CAIRN_PROJECT).",
)
@click.option("-t", "--type", "type_", default="dataset", show_default=True, help="Artifact type.")
@click.option("-a", "--alias", "aliases", multiple=True, help="Alias for the version (repeatable).")
@click.option("-d", "--description", help="Description of the artifact.")
@click.option(
    "--policy",
    type=click.Choice(["mutable", "immutable"]),
    default="mutable",
    show_default=True,
    help="'immutable' lets the store hard-link large files instead of copying them"
    " (promise not to change them).",
)
@json_option
def put(
    path: str,
    name: str | None,
    type_: str,
    aliases: tuple[str, ...],
    description: str | None,
    policy: str,
    as_json: bool,
) -> None:
    """Log the file or directory PATH as a new version and print it.

    Identical content makes no new version: the existing one is printed and gets the aliases.
    """
    result = sdk.put_path(
        path, name, type=type_, aliases=aliases, description=description, policy=policy
    )
    if as_json:
        emit_json(result.to_json())
        return
    v = result.version
    if result.created:
        click.echo(f"created {v.qualified_name} ({v.file_count} files, {size(v.size)})")
    else:
        click.echo(f"reused {v.qualified_name}: identical content, no new version made")


@artifact.command()
@click.argument("path")
@click.option("--root", help="Directory to write to (default: $CAIRN_ARTIFACT_DIR/name:version).")
@click.option("--path-prefix", help="Only download entries whose path starts with this.")
@json_option
def get(path: str, root: str | None, path_prefix: str | None, as_json: bool) -> None:
    """Download the version PATH ([[entity/]project/]name[:alias]) and print where it is."""
    record, where = sdk.get_path(path, root=root, path_prefix=path_prefix)
    if as_json:
        emit_json({**sdk.version_json(record), "root": where})
    else:
        click.echo(where)


@artifact.command("ls")
@click.argument("project")
@click.option("-t", "--type", "type_", help="Only collections of this type.")
@json_option
def ls(project: str, type_: str | None, as_json: bool) -> None:
    """List the artifacts (collections) of PROJECT ([entity/]project)."""
    collections = sdk.list_collections(project, type_)
    if as_json:
        emit_json([sdk.collection_json(c) for c in collections])
        return
    emit_table(
        ["NAME", "TYPE", "LATEST", "VERSIONS", "SIZE", "UPDATED"],
        [
            [
                c.name,
                c.type,
                None if c.latest_index is None else f"v{c.latest_index}",
                c.version_count,
                size(c.latest_size),
                sdk.iso_time(c.updated_at),
            ]
            for c in collections
        ],
    )


@artifact.command()
@click.argument("path")
@click.option("--include-pending", is_flag=True, help="Also list PENDING distributed versions.")
@json_option
def versions(path: str, include_pending: bool, as_json: bool) -> None:
    """List the versions of PATH ([[entity/]project/]name), newest first."""
    records = sdk.list_versions(path, include_pending=include_pending)
    if as_json:
        emit_json([sdk.version_json(r) for r in records])
        return
    headers = ["VERSION", "ALIASES", "FILES", "SIZE", "CREATED", "RUN", "EXPIRES"]
    rows = [
        [
            r.version or f"({r.state.lower()})",
            ",".join(r.aliases),
            r.file_count,
            size(r.size),
            sdk.iso_time(r.created_at),
            r.created_by,
            None if r.ttl_seconds is None else sdk.iso_time(r.created_at + r.ttl_seconds),
        ]
        for r in records
    ]
    emit_table(headers, rows)


@artifact.command()
@click.argument("path")
@click.option("--prefix", default="", help="Only entries whose path starts with this.")
@json_option
def files(path: str, prefix: str, as_json: bool) -> None:
    """List the files of the version PATH ([[entity/]project/]name[:alias]), in path order."""
    _, entries = sdk.list_files(path, prefix=prefix)
    if as_json:
        emit_json_list(sdk.entry_json(e) for e in entries)
        return
    # Streamed (a version may have millions of entries): fixed-width columns, path last.
    click.echo(f"{'SIZE':>10}  {'DIGEST':<19}  PATH")
    for e in entries:
        digest = "reference" if e.ref is not None else short_digest(e.digest, algorithm=True)
        target = f"  -> {e.ref}" if e.ref is not None else ""
        click.echo(f"{size(e.size):>10}  {digest:<19}  {e.path}{target}")


@artifact.command()
@click.argument("old")
@click.argument("new")
@json_option
def diff(old: str, new: str, as_json: bool) -> None:
    """Show what changed from version OLD to version NEW.

    NEW may leave out the entity and project (they default to OLD's):
    `cairn artifact diff mnist/images:v0 images:v1`.
    """
    report = sdk.diff_versions(old, new)
    if as_json:
        emit_json(report.to_json())
        return
    d = report.diff
    for e in d.added:
        click.echo(f"+ {e.path}  ({size(e.size)})")
    for e in d.removed:
        click.echo(f"- {e.path}  ({size(e.size)})")
    for o, n in d.modified:
        click.echo(f"~ {n.path}  ({size(o.size)} -> {size(n.size)})")
    delta = report.modified_bytes
    sign = "+" if delta >= 0 else "-"
    click.echo(
        f"{report.old.qualified_name} -> {report.new.qualified_name}:"
        f" {len(d.added)} added ({size(report.added_bytes)}),"
        f" {len(d.removed)} removed ({size(report.removed_bytes)}),"
        f" {len(d.modified)} modified ({sign}{size(abs(delta))})"
    )


@artifact.group()
def alias() -> None:
    """Add or remove an alias of a version."""


@alias.command("add")
@click.argument("path")
@click.argument("name")
def alias_add(path: str, name: str) -> None:
    """Give the version PATH (project/name:version) the alias NAME (moved if another has it)."""
    record = sdk.add_alias(path, name)
    click.echo(f"{record.qualified_name}: aliases {', '.join(record.aliases)}")


@alias.command("rm")
@click.argument("path")
@click.argument("name")
def alias_rm(path: str, name: str) -> None:
    """Remove the alias NAME from the version PATH (project/name:version)."""
    record = sdk.remove_alias(path, name)
    click.echo(f"{record.qualified_name}: aliases {', '.join(record.aliases) or '(none)'}")


@artifact.command("link")
@click.argument("path")
@click.argument("target")
@click.option("-a", "--alias", "aliases", multiple=True, help="Alias in TARGET (repeatable).")
@json_option
def link(path: str, target: str, aliases: tuple[str, ...], as_json: bool) -> None:
    """Link the version PATH into TARGET: a registry's wandb-registry-<name>/<collection>, or
    [[entity/]project/]collection. The link has its own number and aliases there and the same
    content (no copy)."""
    record = sdk.link_version(path, target, aliases)
    if as_json:
        emit_json(sdk.version_json(record))
        return
    click.echo(f"linked {path} as {record.qualified_name} (aliases {', '.join(record.aliases)})")


@artifact.command("registries")
@json_option
def registries(as_json: bool) -> None:
    """List the registries (model and dataset always exist)."""
    records = sdk.list_registries()
    if as_json:
        emit_json(
            [
                {
                    "name": r.name,
                    "project": r.project,
                    "entity": r.entity,
                    "description": r.description,
                    "visibility": r.visibility,
                    "artifact_types": list(r.artifact_types),
                }
                for r in records
            ]
        )
        return
    headers = ["NAME", "PROJECT", "TYPES", "DESCRIPTION"]
    rows = [
        [r.name, f"{r.entity}/{r.project}", ",".join(r.artifact_types) or "any", r.description]
        for r in records
    ]
    emit_table(headers, rows)


@artifact.command("rm")
@click.argument("path")
@click.option("--delete-aliases", is_flag=True, help="Also delete the version's aliases.")
def rm(path: str, delete_aliases: bool) -> None:
    """Delete the version PATH (project/name:version).

    A version with aliases is refused unless --delete-aliases is given. Its number is never
    reused; `cairn gc` frees the space of content no other version uses.
    """
    record = sdk.delete_version(path, delete_aliases=delete_aliases)
    click.echo(f"deleted {record.qualified_name}")
