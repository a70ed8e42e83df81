use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use intentgate_shared::key_ring::{KeyRing, MasterKey};
use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_800_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const ACME: Owner<'static> = Owner {
    tenant: "acme",
    root: "root-1",
};

fn ring(byte: u8) -> KeyRing {
    KeyRing::single(MasterKey::from_bytes(&[byte; 32]))
}

fn seal(byte: u8) -> SessionSeal {
    SessionSeal::from_ring(&ring(byte), HOUR).unwrap()
}

#[test]
fn a_sealed_id_opens_to_the_upstream_id_its_owner_and_expiry() {
    let s = seal(1);
    let id = s.seal("up-session-7", ACME, None, NOW).unwrap();
    assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{id}");
    assert!(
        !id.contains("up-session-7"),
        "the upstream id is not readable"
    );
    let opened = s.open(id.as_bytes(), NOW).unwrap();
    assert_eq!(
        opened,
        Opened {
            upstream: "up-session-7".into(),
            tenant: "acme".into(),
            root: "root-1".into(),
            expires_at: NOW + 3600,
        }
    );
    assert_eq!(opened.belongs_to(ACME), Ok(()));
    // A fresh nonce each time: two seals of one session differ, both open.
    let again = s.seal("up-session-7", ACME, None, NOW).unwrap();
    assert_ne!(again, id);
    assert_eq!(
        s.open(again.as_bytes(), NOW).unwrap().upstream,
        "up-session-7"
    );
}

#[test]
fn a_session_expires_with_its_lifetime_or_its_token_whichever_is_first() {
    let s = seal(1);
    let id = s.seal("u", ACME, Some(NOW + 60), NOW).unwrap();
    assert_eq!(
        s.open(id.as_bytes(), NOW + 59).unwrap().expires_at,
        NOW + 60
    );
    assert_eq!(
        s.open(id.as_bytes(), NOW + 60),
        Err(SessionRefusal::Expired)
    );
    let id = s.seal("u", ACME, Some(NOW + 86_400), NOW).unwrap();
    assert!(s.open(id.as_bytes(), NOW + 3599).is_ok());
    assert_eq!(
        s.open(id.as_bytes(), NOW + 3600),
        Err(SessionRefusal::Expired)
    );
    // A token already expired gives an id that never opens.
    let id = s.seal("u", ACME, Some(NOW - 1), NOW).unwrap();
    assert_eq!(s.open(id.as_bytes(), NOW), Err(SessionRefusal::Expired));
}

#[test]
fn every_tampered_byte_is_refused() {
    let s = seal(1);
    let id = s.seal("up-session-7", ACME, None, NOW).unwrap();
    let wire = URL_SAFE_NO_PAD.decode(&id).unwrap();
    for i in 0..wire.len() {
        for flip in [0x01, 0x80] {
            let mut bad = wire.clone();
            bad[i] ^= flip;
            let text = URL_SAFE_NO_PAD.encode(&bad);
            let want = if i == 0 {
                SessionRefusal::NotIssued
            } else {
                SessionRefusal::Forged
            };
            assert_eq!(s.open(text.as_bytes(), NOW), Err(want), "byte {i}");
        }
    }
    // Truncated or extended.
    let short = URL_SAFE_NO_PAD.encode(&wire[..wire.len() - 1]);
    assert_eq!(s.open(short.as_bytes(), NOW), Err(SessionRefusal::Forged));
    let mut long = wire.clone();
    long.push(0);
    let long = URL_SAFE_NO_PAD.encode(&long);
    assert_eq!(s.open(long.as_bytes(), NOW), Err(SessionRefusal::Forged));
}

#[test]
fn raw_upstream_ids_and_other_text_were_not_issued_here() {
    let s = seal(1);
    for raw in [
        "",
        "sess-123",
        "6f9619ff8b86d011b42d00cf4fc964ff",
        "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
        "not base64 at all!",
        "AAAA====",
    ] {
        assert_eq!(
            s.open(raw.as_bytes(), NOW),
            Err(SessionRefusal::NotIssued),
            "{raw:?}"
        );
    }
    let huge = "A".repeat(MAX_SEALED + 1);
    assert_eq!(s.open(huge.as_bytes(), NOW), Err(SessionRefusal::NotIssued));
}

#[test]
fn another_master_key_cannot_open_and_a_previous_one_still_does() {
    let old = seal(1);
    let id = old.seal("u", ACME, None, NOW).unwrap();
    assert_eq!(
        seal(2).open(id.as_bytes(), NOW),
        Err(SessionRefusal::Forged)
    );
    // Another replica with the same master key derives the same key once, at startup.
    assert!(seal(1).open(id.as_bytes(), NOW).is_ok());
    // Rotation: the new key seals, the previous one still opens what it sealed.
    let rotated = ring(2).with_previous(MasterKey::from_bytes(&[1; 32]));
    let rotated = SessionSeal::from_ring(&rotated, HOUR).unwrap();
    assert_eq!(rotated.open(id.as_bytes(), NOW).unwrap().upstream, "u");
    let new_id = rotated.seal("v", ACME, None, NOW).unwrap();
    assert!(seal(2).open(new_id.as_bytes(), NOW).is_ok());
    assert_eq!(
        old.open(new_id.as_bytes(), NOW),
        Err(SessionRefusal::Forged)
    );
    // A per-process key opens nothing sealed elsewhere.
    let random = SessionSeal::random(HOUR).unwrap();
    assert_eq!(random.open(id.as_bytes(), NOW), Err(SessionRefusal::Forged));
    let own = random.seal("w", ACME, None, NOW).unwrap();
    assert!(random.open(own.as_bytes(), NOW).is_ok());
}

#[test]
fn a_session_belongs_to_its_tenant_and_root_token_or_to_no_token() {
    let s = seal(1);
    let opened = |owner| {
        s.open(s.seal("u", owner, None, NOW).unwrap().as_bytes(), NOW)
            .unwrap()
    };
    let acme = opened(ACME);
    let cases = [
        (ACME, Ok(())),
        (
            Owner {
                tenant: "globex",
                root: "root-1",
            },
            Err(SessionRefusal::OtherTenant),
        ),
        (
            Owner {
                tenant: "acme",
                root: "root-2",
            },
            Err(SessionRefusal::OtherToken),
        ),
        (Owner::default(), Err(SessionRefusal::TokenMissing)),
    ];
    for (caller, want) in cases {
        assert_eq!(acme.belongs_to(caller), want, "{caller:?}");
    }
    let anonymous = opened(Owner::default());
    assert_eq!(anonymous.belongs_to(Owner::default()), Ok(()));
    assert_eq!(anonymous.belongs_to(ACME), Err(SessionRefusal::TokenAdded));
}

#[test]
fn what_cannot_be_sealed_is_an_error_naming_no_value() {
    let s = seal(1);
    for upstream in ["", "with space", "é", &"x".repeat(MAX_UPSTREAM_ID + 1)] {
        assert_eq!(
            s.seal(upstream, ACME, None, NOW),
            Err(SealError::UpstreamId),
            "{upstream:?}"
        );
    }
    assert!(
        s.seal(&"x".repeat(MAX_UPSTREAM_ID), ACME, None, NOW)
            .is_ok()
    );
    let long = "t".repeat(256);
    let owner = Owner {
        tenant: &long,
        root: "r",
    };
    assert_eq!(s.seal("u", owner, None, NOW), Err(SealError::Binding));
    assert!(!format!("{s:?}").contains("key:"), "{s:?}");
}

proptest! {
    #[test]
    fn random_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let s = seal(3);
        prop_assert!(s.open(&bytes, NOW).is_err());
        // The same bytes as well-formed base64url, with or without the version byte.
        prop_assert!(s.open(URL_SAFE_NO_PAD.encode(&bytes).as_bytes(), NOW).is_err());
        let mut versioned = vec![VERSION];
        versioned.extend_from_slice(&bytes);
        prop_assert!(s.open(URL_SAFE_NO_PAD.encode(&versioned).as_bytes(), NOW).is_err());
    }

    #[test]
    fn any_upstream_id_and_owner_round_trip_and_bind(
        upstream in "[!-~]{1,64}",
        tenant in "[a-z]{0,12}",
        root in "[a-z0-9]{1,26}",
        other in "[a-z0-9]{1,26}",
    ) {
        let s = seal(4);
        let owner = Owner { tenant: &tenant, root: &root };
        let id = s.seal(&upstream, owner, None, NOW).unwrap();
        let opened = s.open(id.as_bytes(), NOW).unwrap();
        prop_assert_eq!(&opened.upstream, &upstream);
        prop_assert_eq!(opened.belongs_to(owner), Ok(()));
        let stranger = Owner { tenant: &tenant, root: &other };
        prop_assert_eq!(opened.belongs_to(stranger).is_ok(), other == root);
        prop_assert!(seal(5).open(id.as_bytes(), NOW).is_err());
    }
}
