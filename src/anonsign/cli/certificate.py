"""``anonsign petition certificate``: the PDF the organizers hand to the addressee."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("certificate")
@click.argument("slug")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The PDF file to write (replaced if it exists).",
)
@click.option(
    "--url",
    help="The petition's public address, http://<onion>/p/<slug> (default: from "
    "ANONSIGN_ONION_ADDRESS).",
)
@click.option(
    "--lang",
    "languages",
    multiple=True,
    help="A language of the document (en, ru, tk); repeat for more. Default: English and "
    "every language the petition has a version in.",
)
def certificate(slug: str, out: Path, url: str | None, languages: tuple[str, ...]) -> None:
    """Write the petition's certificate of the count: its text, the signed count, the
    checkpoint, the log key, the witnesses that cosigned, and how to check it all.

    Run it after `petition close` for the final count (before, it states the count so
    far). It holds nothing about any signer: only what the public log shows.
    """
    from anonsign.audit.bundle import parse_petition_url
    from anonsign.certificate import (
        CertificateError,
        facts_from_note,
        languages_of,
        write_certificate,
    )
    from anonsign.config import load_settings
    from anonsign.service import Service

    settings = load_settings()
    if url is None:
        if settings.onion_address is None:
            raise CertificateError(
                "Give the petition's public address with --url http://<onion>/p/"
                f"{slug} (or set ANONSIGN_ONION_ADDRESS)."
            )
        url = f"http://{settings.onion_address}/p/{slug}"
    address = parse_petition_url(url)
    if address.slug != slug:
        raise CertificateError(f"--url names the petition {address.slug!r}, not {slug!r}.")
    service = Service.open(settings)
    try:
        petition = service.petition(slug)
        served = service.served_checkpoint(slug)
        facts = facts_from_note(
            petition,
            served.note,
            published_hour=served.published_hour,
            verifier_key=service.verifier_key(),
            address=address.url,
            site_name=settings.site_name,
            witness_keys={w.verifier.key_id: w.verifier.verifier_key() for w in service.witnesses},
        )
    finally:
        service.close_connections()
    chosen = languages_of(petition, list(languages) or None)
    write_certificate(facts, out, chosen)
    state = "final" if facts.closed else "so far (the petition is still open)"
    cosigned = ", ".join(w.name for w in facts.witnesses) or "no witness yet"
    click.echo(
        f"Wrote {out}: {facts.checkpoint.size:,} signatures, {state}; cosigned by {cosigned}; "
        f"in {', '.join(chosen)}."
    )
