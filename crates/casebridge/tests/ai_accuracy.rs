//! The offline AI-fields provider on the labelled transcripts in
//! `tests/data/ai_fields_labelled.json`: Priority by the description's
//! criteria, and the order number. Prints one line per transcript and the
//! accuracy, and fails when the provider gets fewer right than the floor
//! or fills any field with a wrong value (an empty field costs an agent a
//! click; a wrong one misroutes a case).

use casebridge::ai::{Choice, FieldType, Mapping, Provider, Transcript};
use serde_json::Value;
use uuid::Uuid;

/// The share of transcripts each field must get exactly right.
const FLOOR: f64 = 0.9;

fn mapping(v: &Value) -> Mapping {
    let kind = if v["type"] == "dropdown" {
        FieldType::Dropdown
    } else {
        FieldType::Text
    };
    Mapping {
        field_name: v["field_name"].as_str().unwrap().into(),
        title: v["title"].as_str().unwrap().into(),
        kind,
        description: v["description"].as_str().unwrap().into(),
        column: v["field_name"].as_str().unwrap().into(),
        lookup: None,
        options: v["options"]
            .as_array()
            .map(|o| {
                o.iter()
                    .enumerate()
                    .map(|(i, n)| Choice {
                        name: n.as_str().unwrap().into(),
                        id: Uuid::from_u128(i as u128 + 1),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        max_length: v["max_length"].as_u64().map(|n| n as usize),
    }
}

#[derive(Default)]
struct Tally {
    right: usize,
    empty: usize,
    wrong: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ai_fields_labelled.json"
    );
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mappings: Vec<Mapping> = data["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(mapping)
        .collect();
    let cases = data["transcripts"].as_array().unwrap();
    let labels = ["priority", "order"];
    let mut tallies = [Tally::default(), Tally::default()];
    println!(
        "offline AI fields on {} labelled transcripts ({path})",
        cases.len()
    );
    for case in cases {
        let transcript = Transcript::parse(case["transcript"].as_str().unwrap());
        let evaluation = Provider::Offline.evaluate(&mappings, &transcript).await;
        let mut line = format!("  {}", case["id"].as_str().unwrap());
        for (i, label) in labels.iter().enumerate() {
            let expected = case[label].as_str();
            let got = evaluation.values[i].value.as_deref();
            let verdict = if got == expected {
                tallies[i].right += 1;
                "ok"
            } else if got.is_none() {
                tallies[i].empty += 1;
                "EMPTY"
            } else {
                tallies[i].wrong += 1;
                "WRONG"
            };
            line.push_str(&format!(
                "  {label}: {:<10} {verdict:<5}",
                got.unwrap_or("-")
            ));
            if verdict != "ok" {
                line.push_str(&format!(
                    " (expected {}; {})",
                    expected.unwrap_or("empty"),
                    evaluation.values[i].reason
                ));
            }
        }
        println!("{line}");
    }
    let mut failed = false;
    for (label, t) in labels.iter().zip(&tallies) {
        let accuracy = t.right as f64 / cases.len() as f64;
        println!(
            "{label}: {}/{} right ({:.0} %), {} left empty, {} wrong",
            t.right,
            cases.len(),
            accuracy * 100.0,
            t.empty,
            t.wrong
        );
        if accuracy < FLOOR || t.wrong > 0 {
            failed = true;
        }
    }
    if cases.len() < 20 {
        println!("fewer than 20 labelled transcripts");
        failed = true;
    }
    if failed {
        println!(
            "test result: FAILED. the offline provider is below {:.0} % or filled a wrong value",
            FLOOR * 100.0
        );
        std::process::exit(1);
    }
    println!(
        "test result: ok. offline accuracy at or above {:.0} %, no wrong values",
        FLOOR * 100.0
    );
}
