use super::test_support::config;
use super::*;
use crate::domain::model::Source;

/// Where each registered provider's official vectors are in `providers.json`, when the key
/// is not its `--provider` name.
const VECTOR_KEYS: &[(&str, &str)] = &[("standard", "standard_webhooks")];

/// Registered providers without official vectors, and why.
const WITHOUT_OFFICIAL_VECTORS: &[(&str, &str)] = &[
    (
        "stripe",
        "Stripe publishes no fixed vector (providers.json says so); the unit tests use a \
         header made by the stripe library and the live test signs with it",
    ),
    (
        "hmac",
        "generic: no sender to publish vectors; the unit tests sign each option combination",
    ),
    (
        "token",
        "no signature: the token is compared as given, covered by the unit and live tests",
    ),
    (
        "typeform",
        "Typeform publishes only the algorithm, which the hmac unit test follows",
    ),
];

/// What the completeness test found missing for each registered provider.
fn missing_pieces(docs: &str, provider_files: &str) -> Vec<String> {
    let vectors = test_support::vectors();
    let fuzzed = fuzzing::fuzzed_providers();
    let mut missing = Vec::new();
    for provider in PROVIDERS {
        let name = provider.name;
        let exempt = WITHOUT_OFFICIAL_VECTORS.iter().any(|(n, _)| *n == name);
        let key = VECTOR_KEYS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name, |(_, key)| *key);
        if !exempt {
            let vector = &vectors[key];
            if vector.get("secret").or(vector.get("auth_token")).is_none() {
                missing.push(format!(
                    "{name}: no official vectors under {key:?} in testdata/providers.json \
                     (or list it in WITHOUT_OFFICIAL_VECTORS with the reason)"
                ));
            } else if !provider_files.contains(&format!("vectors()[\"{key}\"]")) {
                missing.push(format!("{name}: no unit test uses the {key} vectors"));
            }
        }
        match fuzzed.iter().find(|(n, _)| *n == name) {
            None => missing.push(format!(
                "{name}: its sample_options configure no source for fuzzing::fuzzed_providers \
                 (the verify_request target)"
            )),
            Some((_, config)) if !configures(config, name) => missing.push(format!(
                "{name}: its fuzz entry is a {} config",
                config.name()
            )),
            Some(_) => {}
        }
        let heading = format!("`--provider {name}");
        let documented = docs.lines().any(|line| {
            line.starts_with('#')
                && line.match_indices(&heading).any(|(at, _)| {
                    matches!(line[at + heading.len()..].chars().next(), Some('`' | ' '))
                })
        });
        if !documented {
            missing.push(format!(
                "{name}: no section headed {heading}` in docs/providers.md"
            ));
        }
    }
    missing
}

/// True when `config` is what `--provider name` stores: its own, or its hmac preset.
fn configures(config: &ProviderConfig, name: &str) -> bool {
    match config.options::<HmacOptions>() {
        Some(options) if options.preset.is_some() => options.preset.as_deref() == Some(name),
        _ => config.name() == name,
    }
}

/// The text of every provider file, for looking up which vectors their tests use.
fn provider_files() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    text
}

fn provider_docs() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/providers.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_registered_provider_has_vectors_fuzzing_and_docs() {
    let missing = missing_pieces(&provider_docs(), &provider_files());
    assert!(
        missing.is_empty(),
        "registered providers lack pieces (see docs/providers.md, Adding a provider):\n{}",
        missing.join("\n")
    );
    // The fuzz entries run through the fuzz target that cargo-fuzz builds.
    let fuzz_manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml");
    let manifest = std::fs::read_to_string(fuzz_manifest).unwrap();
    assert!(manifest.contains("fuzz_targets/verify_request.rs"));
}

#[test]
fn the_completeness_check_notices_each_missing_piece() {
    let docs = provider_docs();
    let files = provider_files();
    assert!(missing_pieces(&docs, &files).is_empty());
    let undocumented = docs.replace("`--provider shopify`", "`shopify`");
    assert_eq!(
        missing_pieces(&undocumented, &files),
        ["shopify: no section headed `--provider shopify` in docs/providers.md"]
    );
    let untested = files.replace(r#"vectors()["slack"]"#, "vectors()[SLACK]");
    assert_eq!(
        missing_pieces(&docs, &untested),
        ["slack: no unit test uses the slack vectors"]
    );
}

#[test]
fn every_vector_belongs_to_a_registered_provider() {
    // A vector added to providers.json for no registered provider fails this test.
    let vectors = test_support::vectors();
    let names: Vec<&String> = vectors
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with('_'))
        .collect();
    assert!(!names.is_empty());
    for key in names {
        let name = VECTOR_KEYS
            .iter()
            .find(|(_, k)| k == key)
            .map_or(key.as_str(), |(name, _)| *name);
        assert!(
            find(name).is_some(),
            "the {key} vector names no registered provider"
        );
    }
}

#[test]
fn cli_names_are_unique_and_options_refuse_other_providers() {
    let mut names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), PROVIDERS.len());
    let mut given = GivenOptions::default();
    given.set("public-url", Some("https://h.example/t".into()));
    let err = find("github").unwrap().new_config(&given).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--public-url is an option of --provider twilio"
    );
    given = GivenOptions::default();
    given.set("header", Some("X-Sig".into()));
    let err = find("slack").unwrap().new_config(&given).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--header is an option of --provider hmac or typeform"
    );
    let hmac = find("hmac").unwrap().new_config(&given).unwrap();
    assert_eq!(hmac.name(), "hmac");
    let typeform = find("typeform")
        .unwrap()
        .new_config(&GivenOptions::default())
        .unwrap();
    assert_eq!(
        typeform,
        ProviderConfig::from(HmacOptions::preset("typeform").unwrap())
    );
    given.set("preset", Some("typeform".into()));
    assert_eq!(
        find("hmac").unwrap().new_config(&given).unwrap().name(),
        "hmac"
    );
    let mut wrong = GivenOptions::default();
    wrong.set("preset", Some("nope".into()));
    let err = find("typeform").unwrap().new_config(&wrong).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--provider typeform is the typeform preset; leave out --preset nope"
    );
    let err = find("hmac").unwrap().new_config(&wrong).unwrap_err();
    assert_eq!(err.to_string(), r#"no preset "nope"; presets: typeform"#);
}

#[test]
fn every_provider_config_round_trips_flat_in_a_source() {
    for provider in [
        config("github"),
        config("standard"),
        config("stripe"),
        config("shopify"),
        config("slack"),
        ProviderConfig::from(TwilioOptions::default()),
        ProviderConfig::from(TwilioOptions {
            public_url: Some("https://h.example/t".into()),
        }),
        ProviderConfig::from(TokenOptions::default()),
        ProviderConfig::from(TokenOptions {
            token_param: None,
            token_header: Some("X-Token".into()),
        }),
        ProviderConfig::from(HmacOptions::preset("typeform").unwrap()),
    ] {
        let source = test_support::source(provider, "s");
        let json = serde_json::to_value(&source).unwrap();
        assert_eq!(json["provider"], source.provider.name());
        let back: Source = serde_json::from_value(json).unwrap();
        assert_eq!(back, source);
    }
    // Sources stored before these options existed still load.
    let old: Source = serde_json::from_str(
        r#"{"name":"t","provider":"twilio","secrets":["x"],"tolerance_secs":300}"#,
    )
    .unwrap();
    assert_eq!(old.provider, ProviderConfig::from(TwilioOptions::default()));
}

#[test]
fn every_provider_config_keeps_its_stored_json() {
    // Sources in SQLite and DynamoDB are this JSON: each variant must write and read exactly it.
    let stored = |rest: &str| {
        format!(r#"{{"name":"s",{rest},"secrets":["k"],"tolerance_secs":300,"created_at":7}}"#)
    };
    let cases = [
        (config("github"), r#""provider":"github""#),
        (config("standard"), r#""provider":"standard""#),
        (config("stripe"), r#""provider":"stripe""#),
        (config("shopify"), r#""provider":"shopify""#),
        (config("slack"), r#""provider":"slack""#),
        (
            ProviderConfig::from(TwilioOptions::default()),
            r#""provider":"twilio""#,
        ),
        (
            ProviderConfig::from(TwilioOptions {
                public_url: Some("https://h.example/t".into()),
            }),
            r#""provider":"twilio","public_url":"https://h.example/t""#,
        ),
        (
            ProviderConfig::from(TokenOptions::default()),
            r#""provider":"token""#,
        ),
        (
            ProviderConfig::from(TokenOptions {
                token_param: Some("key".into()),
                token_header: Some("X-Token".into()),
            }),
            r#""provider":"token","token_param":"key","token_header":"X-Token""#,
        ),
        (
            ProviderConfig::from(HmacOptions {
                header: "X-Sig".into(),
                ..HmacOptions::default()
            }),
            r#""provider":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","prefix":"","type_header":null,"id_header":null"#,
        ),
        (
            ProviderConfig::from(HmacOptions {
                header: "X-Sig".into(),
                algorithm: crate::signing::Algorithm::Sha512,
                encoding: SignatureEncoding::Base64,
                prefix: "v1=".into(),
                type_header: Some("X-Type".into()),
                id_header: Some("X-Id".into()),
                type_pointer: Some("/type".into()),
                id_pointer: Some("/id".into()),
                timestamp_header: Some("X-Ts".into()),
                signed_payload: Some("{timestamp}.{id}.{body}".into()),
                preset: None,
            }),
            r#""provider":"hmac","header":"X-Sig","algorithm":"sha512","encoding":"base64","prefix":"v1=","type_header":"X-Type","id_header":"X-Id","type_pointer":"/type","id_pointer":"/id","timestamp_header":"X-Ts","signed_payload":"{timestamp}.{id}.{body}""#,
        ),
        (
            ProviderConfig::from(HmacOptions::preset("typeform").unwrap()),
            r#""provider":"hmac","header":"Typeform-Signature","algorithm":"sha256","encoding":"base64","prefix":"sha256=","type_header":null,"id_header":null,"type_pointer":"/event_type","id_pointer":"/event_id","preset":"typeform""#,
        ),
    ];
    for (provider, fields) in cases {
        let source = Source {
            name: "s".into(),
            created_at: 7,
            ..super::test_support::source(provider, "k")
        };
        let json = stored(fields);
        assert_eq!(serde_json::to_string(&source).unwrap(), json);
        assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), source);
    }
}

/// Sources as SQLite and DynamoDB hold them, one per provider and option shape, written by the
/// serializer of the closed `ProviderConfig` enum that came before the registry's decoding.
const STORED_SOURCES: &[&str] = &[
    r#"{"name":"s0","provider":"github","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":300,"created_at":1700000000,"reconcile":{"api_url":"http://127.0.0.1:9","credential":"env:GH_TOKEN","github_hook":"repos/o/r/hooks/1"}}"#,
    r#"{"name":"s1","provider":"standard","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":301,"created_at":1700000001}"#,
    r#"{"name":"s2","provider":"stripe","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":302,"created_at":1700000002,"reconcile":{"api_url":"http://127.0.0.1:9","credential":"env:GH_TOKEN","github_hook":"repos/o/r/hooks/1"}}"#,
    r#"{"name":"s3","provider":"shopify","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":303,"created_at":1700000003}"#,
    r#"{"name":"s4","provider":"slack","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":304,"created_at":1700000004}"#,
    r#"{"name":"s5","provider":"twilio","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":305,"created_at":1700000005}"#,
    r#"{"name":"s6","provider":"twilio","public_url":"https://hooks.example.com/prod/twilio","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":306,"created_at":1700000006}"#,
    r#"{"name":"s7","provider":"token","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":307,"created_at":1700000007}"#,
    r#"{"name":"s8","provider":"token","token_param":"key","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":308,"created_at":1700000008}"#,
    r#"{"name":"s9","provider":"token","token_header":"Authorization","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":309,"created_at":1700000009}"#,
    r#"{"name":"s10","provider":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","prefix":"","type_header":null,"id_header":null,"secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":310,"created_at":1700000010}"#,
    r#"{"name":"s11","provider":"hmac","header":"X-Signature","algorithm":"sha512","encoding":"base64","prefix":"v1=","type_header":"X-Type","id_header":"X-Id","type_pointer":"/event/type","id_pointer":"/id","timestamp_header":"X-Timestamp","signed_payload":"{timestamp}.{id}.{body}","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":311,"created_at":1700000011}"#,
    r#"{"name":"s12","provider":"hmac","header":"x-hub","algorithm":"sha1","encoding":"hex","prefix":"","type_header":null,"id_header":null,"secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":312,"created_at":1700000012}"#,
    r#"{"name":"s13","provider":"hmac","header":"Typeform-Signature","algorithm":"sha256","encoding":"base64","prefix":"sha256=","type_header":null,"id_header":null,"type_pointer":"/event_type","id_pointer":"/event_id","preset":"typeform","secrets":["first-secret-0123456789","second-secret-0123456789"],"tolerance_secs":313,"created_at":1700000013}"#,
];

#[test]
fn stored_sources_of_every_provider_decode_and_encode_unchanged() {
    let mut stored_tags = std::collections::BTreeSet::new();
    for stored in STORED_SOURCES {
        let source: Source = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&source).unwrap(), *stored);
        // Decoded once, into the provider's own options type.
        let typed = match source.provider.name() {
            "hmac" => source.provider.options::<HmacOptions>().is_some(),
            "twilio" => source.provider.options::<TwilioOptions>().is_some(),
            "token" => source.provider.options::<TokenOptions>().is_some(),
            _ => source.provider.options::<NoOptions>().is_some(),
        };
        assert!(typed, "{stored}");
        stored_tags.insert(source.provider.name());
    }
    let registered: std::collections::BTreeSet<&str> = PROVIDERS
        .iter()
        .filter(|p| p.preset_of.is_none())
        .map(|p| p.name)
        .collect();
    assert_eq!(stored_tags, registered);

    let typeform: Source = serde_json::from_str(STORED_SOURCES[13]).unwrap();
    assert_eq!(
        typeform.provider,
        ProviderConfig::from(HmacOptions::preset("typeform").unwrap())
    );
    let full: Source = serde_json::from_str(STORED_SOURCES[11]).unwrap();
    let options = full.provider.options::<HmacOptions>().unwrap();
    assert_eq!(options.algorithm, crate::signing::Algorithm::Sha512);
    assert_eq!(options.encoding, SignatureEncoding::Base64);
    assert_eq!(
        options.signed_payload.as_deref(),
        Some("{timestamp}.{id}.{body}")
    );
}

#[test]
fn stored_sources_of_no_registered_provider_are_refused_without_their_secrets() {
    for tag in ["acme", "typeform", "Github"] {
        let stored = format!(
            r#"{{"name":"s","provider":"{tag}","secrets":["topsecret-value"],"tolerance_secs":300}}"#
        );
        let err = serde_json::from_str::<Source>(&stored)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("unknown provider \"{tag}\"")),
            "{err}"
        );
        assert!(!err.contains("topsecret"), "{err}");
    }
    let untagged = r#"{"name":"s","secrets":["topsecret-value"],"tolerance_secs":300}"#;
    let err = serde_json::from_str::<Source>(untagged)
        .unwrap_err()
        .to_string();
    assert!(err.contains("provider"), "{err}");
    // An hmac source without its required options does not load, as before.
    let headerless = r#"{"name":"s","provider":"hmac","secrets":["k"],"tolerance_secs":300}"#;
    let err = serde_json::from_str::<Source>(headerless)
        .unwrap_err()
        .to_string();
    assert!(err.contains("header"), "{err}");
}

#[test]
fn only_token_sources_answer_get() {
    assert!(accepts_method(&config("github"), &Method::POST));
    assert!(!accepts_method(&config("github"), &Method::GET));
    let token = ProviderConfig::from(TokenOptions::default());
    assert!(accepts_method(&token, &Method::GET));
    assert!(!accepts_method(&token, &Method::PUT));
}

#[test]
fn source_secrets_are_as_strong_as_the_provider_issues() {
    let shared = [
        config("github"),
        config("shopify"),
        config("slack"),
        ProviderConfig::from(TwilioOptions::default()),
        ProviderConfig::from(TokenOptions::default()),
        ProviderConfig::from(HmacOptions::default()),
        ProviderConfig::from(HmacOptions::preset("typeform").unwrap()),
    ];
    for provider in &shared {
        let name = provider.name();
        for blank in ["", "   "] {
            let err = validate_source_secret(provider, blank).unwrap_err().0;
            assert!(err.starts_with("the secret is empty"), "{name}: {err}");
        }
        let err = validate_source_secret(provider, "fifteen-chars!!")
            .unwrap_err()
            .0;
        assert!(
            err.contains("too short: 15 of at least 16"),
            "{name}: {err}"
        );
        assert!(
            !err.contains("fifteen-chars!!"),
            "{name} echoes the secret: {err}"
        );
        // Padding does not count.
        assert!(validate_source_secret(provider, "  short-secret   ").is_err());
        assert!(
            validate_source_secret(provider, "sixteen-chars!!!").is_ok(),
            "{name}"
        );
        // Real secrets: 32 hex characters (Slack, Twilio), shpss_ + 32 hex (Shopify).
        assert!(validate_source_secret(provider, &"a1".repeat(16)).is_ok());
        assert!(validate_source_secret(provider, &format!("shpss_{}", "f".repeat(32))).is_ok());
    }
    let where_found =
        |provider: &ProviderConfig| validate_source_secret(provider, "x").unwrap_err().0;
    assert!(where_found(&config("github")).contains("typed into GitHub"));
    assert!(where_found(&config("slack")).contains("Signing Secret"));
    assert!(where_found(&shared[4]).contains("token"));
    assert!(where_found(&shared[6]).contains("Typeform"));

    let standard = config("standard");
    for (secret, why) in [
        ("whsec_", "holds 0"),
        ("whsec_AA==", "holds 1"),
        ("whsec_!!!", "base64"),
        // Without the prefix, as the Standard Webhooks libraries take it: still 24 bytes.
        ("AA==", "holds 1"),
    ] {
        let err = validate_source_secret(&standard, secret).unwrap_err().0;
        assert!(err.contains(why), "{secret}: {err}");
        assert!(err.starts_with("a Standard Webhooks secret"), "{err}");
    }
    let vector = test_support::vectors()["standard_webhooks"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(validate_source_secret(&standard, &vector).is_ok());
    let bare = vector.strip_prefix("whsec_").unwrap_or(&vector);
    assert!(validate_source_secret(&standard, bare).is_ok());

    let stripe = config("stripe");
    for secret in ["whsec_", "whsec_  ", "sk_live_abc", ""] {
        let err = validate_source_secret(&stripe, secret).unwrap_err().0;
        assert!(err.contains("Signing secret"), "{err}");
    }
    assert!(validate_source_secret(&stripe, "whsec_abc123").is_ok());
}

#[test]
fn repeated_headers_and_case() {
    let req = test_support::request(&[("X-Thing", " a "), ("x-thing", "b")], "");
    assert_eq!(req.header("x-THING"), Some("a"));
    assert_eq!(req.header_values("x-thing").count(), 2);
}
