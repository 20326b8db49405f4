//! Amazon ECR host names (docs/design.md §3.2): which registry hosts are ECR, and the account,
//! region and partition a private ECR host names.

use std::fmt;

/// The DNS suffixes ECR private registries live under, with the AWS partition each belongs to.
const ECR_SUFFIXES: [(&str, Partition); 9] = [
    ("amazonaws.com", Partition::Aws),
    ("amazonaws.com.cn", Partition::AwsCn),
    ("amazonaws.eu", Partition::AwsEusc),
    ("on.aws", Partition::Aws),
    ("on.amazonwebservices.com.cn", Partition::AwsCn),
    ("c2s.ic.gov", Partition::AwsIso),
    ("sc2s.sgov.gov", Partition::AwsIsoB),
    ("cloud.adc-e.uk", Partition::AwsIsoE),
    ("csp.hci.ic.gov", Partition::AwsIsoF),
];

/// ECR Public registry hosts (tokens come from the `ecr-public` API in us-east-1).
const ECR_PUBLIC_HOSTS: [&str; 2] = ["public.ecr.aws", "ecr-public.aws.com"];

/// An AWS partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    AwsIso,
    AwsIsoB,
    AwsIsoE,
    AwsIsoF,
    AwsEusc,
}

impl Partition {
    /// The partition's id as AWS writes it in ARNs.
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
            Partition::AwsEusc => "aws-eusc",
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an ECR registry host names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EcrHost {
    /// A private registry: `<account>.dkr.ecr[-fips].<region>.<suffix>` or dual-stack `dkr-ecr`.
    Private {
        /// The 12-digit AWS account id.
        account: String,
        /// The region, e.g. `us-east-1`.
        region: String,
        partition: Partition,
        /// Whether the host is a FIPS endpoint (tokens then come from the FIPS ECR API).
        fips: bool,
        /// Whether the host is the dual-stack (`dkr-ecr`) form.
        dual_stack: bool,
    },
    /// ECR Public.
    Public,
}

impl EcrHost {
    /// Parses a host name (no port, no path). `None` when it is not an ECR host.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let host = host.to_ascii_lowercase();
        if ECR_PUBLIC_HOSTS.contains(&host.as_str()) {
            return Some(EcrHost::Public);
        }
        let (account, rest) = host.split_once('.')?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // `dkr.ecr[-fips].REGION...` or dual-stack `dkr-ecr[-fips].REGION...`.
        let (first, rest) = rest.split_once('.')?;
        let (service, rest, dual_stack) = match first {
            "dkr" => {
                let (second, rest) = rest.split_once('.')?;
                (second, rest, false)
            }
            "dkr-ecr" | "dkr-ecr-fips" => (first.strip_prefix("dkr-")?, rest, true),
            _ => return None,
        };
        let fips = match service {
            "ecr" => false,
            "ecr-fips" => true,
            _ => return None,
        };
        let (region, suffix) = rest.split_once('.')?;
        if !valid_region(region) {
            return None;
        }
        let (_, mut partition) = ECR_SUFFIXES.iter().find(|(s, _)| *s == suffix)?;
        if partition == Partition::Aws && region.starts_with("us-gov-") {
            partition = Partition::AwsUsGov;
        }
        Some(EcrHost::Private {
            account: account.to_owned(),
            region: region.to_owned(),
            partition,
            fips,
            dual_stack,
        })
    }
}

/// A region looks like `us-east-1`, `cn-north-1`, `us-gov-west-1`, `us-isob-east-1`, `eusc-de-east-1`.
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(host: &str) -> (String, String, Partition, bool, bool) {
        match EcrHost::parse(host) {
            Some(EcrHost::Private {
                account,
                region,
                partition,
                fips,
                dual_stack,
            }) => (account, region, partition, fips, dual_stack),
            other => panic!("{host}: {other:?}"),
        }
    }

    #[test]
    fn private_hosts_in_every_partition() {
        use Partition::*;
        let cases = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "us-east-1",
                Aws,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                "us-east-1",
                Aws,
                true,
                false,
            ),
            (
                "123456789012.dkr-ecr.us-west-2.on.aws",
                "us-west-2",
                Aws,
                false,
                true,
            ),
            (
                "123456789012.dkr-ecr-fips.us-west-2.on.aws",
                "us-west-2",
                Aws,
                true,
                true,
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
                AwsCn,
                false,
                false,
            ),
            (
                "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
                "cn-northwest-1",
                AwsCn,
                false,
                true,
            ),
            (
                "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
                AwsUsGov,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
                "us-gov-east-1",
                AwsUsGov,
                true,
                false,
            ),
            (
                "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
                "us-iso-east-1",
                AwsIso,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
                "us-isob-east-1",
                AwsIsoB,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
                "eu-isoe-west-1",
                AwsIsoE,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
                "us-isof-south-1",
                AwsIsoF,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
                "eusc-de-east-1",
                AwsEusc,
                false,
                false,
            ),
            (
                "123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM",
                "eu-west-1",
                Aws,
                false,
                false,
            ),
        ];
        for (host, region, partition, fips, dual) in cases {
            let got = private(host);
            assert_eq!(
                got,
                ("123456789012".into(), region.into(), partition, fips, dual),
                "{host}"
            );
        }
    }

    #[test]
    fn public_hosts() {
        assert_eq!(EcrHost::parse("public.ecr.aws"), Some(EcrHost::Public));
        assert_eq!(EcrHost::parse("ecr-public.aws.com"), Some(EcrHost::Public));
    }

    #[test]
    fn look_alikes_are_not_ecr() {
        let cases = [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "1234567890123.dkr.ecr.us-east-1.amazonaws.com",
            "12345678901a.dkr.ecr.us-east-1.amazonaws.com",
            "evil.example",
            "dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.amazonaws.com",
            "123456789012.dkr.ecrx.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr-fipsx.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "123456789012.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.on.aws.evil",
            "x.public.ecr.aws",
            "public.ecr.aws.evil.example",
            "123456789012.dkr.ecr.useast1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.co",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn.evil",
            "123456789012.dkr.ecr-fips-.us-east-1.amazonaws.com",
            "123456789012.dkr..ecr.us-east-1.amazonaws.com",
            "123456789012.dkr-ecr.us-east-1.on.aws.example",
            "123456789012.dkr-ecrfips.us-east-1.on.aws",
            "123456789012.dkr.ecr.us-east-1",
            "",
        ];
        for host in cases {
            assert_eq!(EcrHost::parse(host), None, "{host}");
        }
    }
}
