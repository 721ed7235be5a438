//! Reading through OData 4: shapes, query options and Creatio's filter rules
//! (reference §2.3, §2.7, §2.8).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn account_collection_has_creatios_shape() {
    let app = spawn_emulator().await;
    let r = app.odata(Method::GET, "Account", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["odata-version"], "4.0");
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal"
    );
    let body: Value = r.json().await.unwrap();
    let top: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["@odata.context", "value"]);
    assert_eq!(
        body["@odata.context"],
        app.url("/0/odata/$metadata#Account")
    );
    let account = &body["value"][0];
    let keys: Vec<&str> = account
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..6],
        [
            "Id",
            "CreatedOn",
            "CreatedById",
            "ModifiedOn",
            "ModifiedById",
            "ProcessListeners"
        ]
    );
    assert_eq!(account["Id"], "e308b781-3c5b-4ecb-89ef-5c1ed4da488e");
    assert_eq!(account["Name"], "Our company");
    assert_eq!(account["CreatedOn"], "2019-08-19T13:46:11Z");
    assert_eq!(account["ProcessListeners"], 0);
    assert_eq!(
        account["PrimaryContactId"], EMPTY_GUID,
        "unset lookups are the empty GUID, not null"
    );
    assert_eq!(
        account["Web"], "",
        "unset text is an empty string, not null"
    );
    assert_eq!(
        account["Logo@odata.mediaEditLink"],
        "Account(e308b781-3c5b-4ecb-89ef-5c1ed4da488e)/Logo"
    );
    assert!(account.as_object().unwrap().values().all(|v| !v.is_null()));
}

#[tokio::test]
async fn seeded_lookups_have_the_out_of_the_box_guids() {
    let app = spawn_emulator().await;
    let (_, statuses) = app
        .get_json("CaseStatus?$select=Id,Name,IsFinal,IsResolved&$orderby=StageNumber,Name")
        .await;
    let resolved = statuses["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"] == "Resolved")
        .unwrap();
    assert_eq!(resolved["Id"], STATUS_RESOLVED);
    assert_eq!(resolved["IsResolved"], true);
    assert_eq!(resolved["IsFinal"], false);
    for (set, id) in [
        ("CasePriority", "d9bd322c-f46b-1410-ee8c-0050ba5d6c38"),
        ("CaseOrigin", "019259af-ec9c-4c87-9565-3c00700c7875"),
        ("CaseCategory", "1b0bc159-150a-e111-a31b-00155d04c01d"),
        ("ActivityType", "fbe0acdc-cfc0-df11-b00f-001d60e938c6"),
        ("ActivityCategory", "f51c4643-58e6-df11-971b-001d60e938c6"),
        ("ActivityStatus", "4bdbb88f-58e6-df11-971b-001d60e938c6"),
        ("SysAdminUnit", "a29a3ba5-4b0d-de11-9a51-005056c00008"),
        ("Contact", "410006e1-ca4e-4502-a9ec-e54d922d2c00"),
    ] {
        let (status, row) = app.get_json(&format!("{set}({id})")).await;
        assert_eq!(status, StatusCode::OK, "{set}({id})");
        assert_eq!(
            row["@odata.context"],
            app.url(&format!("/0/odata/$metadata#{set}/$entity"))
        );
    }
}

#[tokio::test]
async fn lookups_filter_by_navigation_path_not_by_flat_column() {
    let app = spawn_emulator().await;
    let case = app.new_case("Printer on fire").await;
    let other = app.new_case("Other").await;
    for (c, title) in [(&case, "one"), (&case, "two"), (&other, "three")] {
        app.create("Activity", json!({"Title": title, "CaseId": c}))
            .await;
    }
    let (status, body) = app
        .get_json(&format!("Activity?$filter=Case/Id eq {case}&$select=Title"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([{"Title": "one"}, {"Title": "two"}]));

    let (status, body) = app
        .get_json(&format!("Activity?$filter=CaseId eq {case}"))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "");
    assert!(body["error"]["innererror"]["message"]
        .as_str()
        .unwrap()
        .contains("Column by path CaseId not found in schema Activity"));

    let (status, _) = app
        .get_json(&format!("Activity?$filter=Case/Id eq guid'{case}'"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .get_json("Case?$filter=Status/Name eq 'New'&$select=Subject&$orderby=Subject")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn filter_literals_and_operators() {
    let app = spawn_emulator().await;
    app.create(
        "Contact",
        json!({"Name": "Miles O'Brien", "Email": "miles@example.com"}),
    )
    .await;
    app.create(
        "Contact",
        json!({"Name": "Ada Lovelace", "Email": "ada@example.com", "Phone": "+15550100"}),
    )
    .await;
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v) = app
        .get_json("Contact?$filter=Name eq 'Miles O''Brien'&$select=Name")
        .await;
    assert_eq!(
        (s, names(&v)),
        (StatusCode::OK, vec!["Miles O'Brien".to_string()])
    );
    let (_, v) = app.get_json("Contact?$filter=contains(Email,'@example.com') and not startswith(Name,'Grace')&$select=Name&$orderby=Name desc").await;
    assert_eq!(names(&v), ["Miles O'Brien", "Ada Lovelace"]);
    let (_, v) = app
        .get_json("Contact?$filter=endswith(Name,'lace') or Phone eq '+15550100'&$select=Name")
        .await;
    assert_eq!(names(&v), ["Ada Lovelace"]);
    let (_, v) = app
        .get_json("Contact?$filter=Email eq 'ADA@EXAMPLE.COM'&$select=Name")
        .await;
    assert_eq!(
        names(&v),
        ["Ada Lovelace"],
        "SQL Server's default collation compares case-insensitively"
    );

    let (s, v) = app.get_json("Contact?$filter=CreatedOn ge 2024-01-01T00:00:00Z and Email ne ''&$select=Name&$orderby=Name").await;
    assert_eq!(
        (s, names(&v)),
        (
            StatusCode::OK,
            vec!["Ada Lovelace".to_string(), "Miles O'Brien".to_string()]
        )
    );
    let (s, v) = app
        .get_json("Contact?$filter=CreatedOn ge '2024-01-01T00:00:00Z'")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("incompatible types"));
    let (_, v) = app.get_json("Contact?$filter=CreatedOn lt 2020-01-01T00:00:00Z and Account/Id eq null&$select=Name&$orderby=Name").await;
    assert_eq!(names(&v), ["Grace Hopper", "Supervisor"]);

    let term = format!("Case/Id eq {STATUS_NEW}");
    let (s, _) = app
        .get_json(&format!(
            "Activity?$filter={}",
            vec![term.as_str(); 15].join(" or ")
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app
        .get_json(&format!(
            "Activity?$filter={}",
            vec![term.as_str(); 20].join(" or ")
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("node count limit of '100'"));
}

#[tokio::test]
async fn select_expand_order_paging_and_count() {
    let app = spawn_emulator().await;
    for i in 0..25 {
        app.create("Case", json!({"Subject": format!("case {i:02}")}))
            .await;
    }
    let (s, v) = app.get_json("Case?$select=Nope").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("'Nope'"));

    let (s, v) = app
        .get_json("Case?$select=Number,Subject&$orderby=Subject desc&$top=10&$skip=20&$count=true")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["@odata.context"],
        app.url("/0/odata/$metadata#Case(Number,Subject)")
    );
    assert_eq!(v["@odata.count"], 25);
    let subjects: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["case 04", "case 03", "case 02", "case 01", "case 00"]
    );
    let number = v["value"][0]["Number"].as_str().unwrap();
    assert!(
        number.starts_with("SR")
            && number.len() == 10
            && number[2..].chars().all(|c| c.is_ascii_digit())
    );

    let (_, v) = app.get_json("Case?$count=true&$top=0").await;
    assert_eq!(
        (v["@odata.count"].clone(), v["value"].clone()),
        (json!(25), json!([]))
    );

    let r = app
        .odata(
            Method::GET,
            "Case/$count?$filter=startswith(Subject,'case 1')",
            None,
        )
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "10");

    let (s, v) = app.get_json("Case?$top=20001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().contains("20000"));

    let (s, v) = app
        .get_json("Case?$top=1&$select=Subject&$expand=Status($select=Name,IsFinal),Owner")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["value"][0]["Status"],
        json!({"Name": "New", "IsFinal": false})
    );
    assert_eq!(
        v["value"][0]["Owner"],
        Value::Null,
        "an unset lookup expands to null"
    );

    let (s, _) = app.get_json("Case?$apply=groupby((Subject))").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_sets_keys_and_metadata() {
    let app = spawn_emulator().await;
    // An unknown entity set: 401 by default, as a live tenant answered
    // (reference/creatio-evidence.md §6, PYCLIENT
    // test_get_collection_error_wrong_collection), shaped as a refused token.
    let r = app.odata(reqwest::Method::GET, "Nope", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["Message"],
        "Authorization has been denied for this request."
    );
    // The other answer seen (CLIO: routing bodies), chosen by the operator.
    let r = app
        .operator(
            reqwest::Method::PUT,
            "/settings",
            Some(serde_json::json!({"unknown_entity_set_status": 404})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (s, v) = app.get_json("Nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["MessageDetail"]
        .as_str()
        .unwrap()
        .contains("controller named 'Nope'"));
    let r = app
        .operator(
            reqwest::Method::PUT,
            "/settings",
            Some(serde_json::json!({"unknown_entity_set_status": 500})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (s, _) = app.get_json("Case(not-a-guid)").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A missing key: 404 with an empty body (evidence §6, PYCLIENT README).
    let r = app
        .odata(reqwest::Method::GET, &format!("Case({STATUS_NEW})"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await.unwrap(), "", "no body");

    let r = app.odata(Method::GET, "$metadata", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csdl = r.text().await.unwrap();
    assert!(csdl.contains("<edmx:Edmx Version=\"4.0\""));
    assert!(csdl.contains("Namespace=\"Terrasoft.Configuration.OData\""));
    assert!(csdl.contains("<EntityType Name=\"Case\">"));
    // Evidence §2 (CLIO's live probe): lookups' Guid columns have no
    // Nullable facet, and no column has MaxLength.
    assert!(csdl.contains("<Property Name=\"StatusId\" Type=\"Edm.Guid\" />"));
    assert!(csdl.contains(
        "<NavigationProperty Name=\"Status\" Type=\"Terrasoft.Configuration.OData.CaseStatus\" />"
    ));
    assert!(csdl.contains("<Property Name=\"Subject\" Type=\"Edm.String\" Nullable=\"false\" />"));
    assert!(
        !csdl.contains("MaxLength"),
        "real $metadata has no MaxLength"
    );
    assert!(!csdl.contains("DefaultValue"));

    let (s, v) = app.get_json("").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "Activity"));
}

/// String comparison follows the tenant's database: case-insensitive by
/// default (SQL Server), case-sensitive when the operator says the tenant
/// runs on PostgreSQL (reference/creatio-evidence.md §5).
#[tokio::test]
async fn string_comparison_follows_the_tenants_collation() {
    let app = spawn_emulator().await;
    app.create(
        "Contact",
        serde_json::json!({"Name": "Ada", "Email": "Ada@Example.com"}),
    )
    .await;
    let hits = |v: &Value| v["value"].as_array().unwrap().len();
    for (collation, expected) in [("case_insensitive", 1), ("case_sensitive", 0)] {
        let r = app
            .operator(
                reqwest::Method::PUT,
                "/settings",
                Some(serde_json::json!({"collation": collation})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        for filter in [
            "Email eq 'ada@example.com'",
            "contains(Email,'example.com') and startswith(Email,'ada')",
        ] {
            let (s, v) = app.get_json(&format!("Contact?$filter={filter}")).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(hits(&v), expected, "{collation}: {filter}");
        }
        let (_, v) = app
            .get_json("Contact?$filter=Email eq 'Ada@Example.com'")
            .await;
        assert_eq!(hits(&v), 1, "{collation}: the exact spelling matches");
    }
}

/// Phones are stored as typed (reference/creatio-evidence.md §5); Creatio
/// searches them through `ContactCommunication.SearchNumber`, the digits
/// reversed (INSTALL `ContactUtilities.PrepareSearchNumber`,
/// `PhoneNumberComparer`: StartWith on the first 7, the number's last 7).
#[tokio::test]
async fn phones_are_stored_as_typed_and_searched_by_reversed_digits() {
    let app = spawn_emulator().await;
    let (_, grace) = app
        .get_json("Contact?$filter=Name eq 'Grace Hopper'&$select=Id,MobilePhone")
        .await;
    assert_eq!(grace["value"][0]["MobilePhone"], "+1 617 440 2498");
    let (_, exact) = app
        .get_json("Contact?$filter=MobilePhone eq '+16174402498'")
        .await;
    assert!(
        exact["value"].as_array().unwrap().is_empty(),
        "an exact E.164 match misses it"
    );
    let (s, found) = app
        .get_json("ContactCommunication?$filter=startswith(SearchNumber,'8942044')&$select=ContactId,Number,SearchNumber")
        .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["value"][0]["ContactId"], grace["value"][0]["Id"]);
    assert_eq!(found["value"][0]["Number"], "+1 617 440 2498");
    assert_eq!(found["value"][0]["SearchNumber"], "89420447161");

    // A contact's new phone replaces its communication; an e-mail is
    // searched in lower case.
    let ada = app
        .create(
            "Contact",
            json!({"Name": "Ada", "Phone": "(213) 566-34-22", "Email": "Ada@Example.com"}),
        )
        .await;
    let id = ada["Id"].as_str().unwrap();
    let r = app
        .odata(
            Method::PATCH,
            &format!("Contact({id})"),
            Some(json!({"Phone": "+1 213 566 34 23"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, rows) = app
        .get_json(&format!("ContactCommunication?$filter=Contact/Id eq {id}&$select=Number,SearchNumber&$orderby=Number"))
        .await;
    let rows: Vec<(&str, &str)> = rows["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Number"].as_str().unwrap(),
                r["SearchNumber"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("+1 213 566 34 23", "32436653121"),
            ("Ada@Example.com", "ada@example.com")
        ]
    );
}
