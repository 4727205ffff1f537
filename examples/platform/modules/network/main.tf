# A network made of terraform_data only: no provider to download, no cloud account needed.
variable "env_name" {
  type    = string
  default = "dev"
}

variable "cidr" {
  type    = string
  default = "10.0.0.0/16"
}

resource "terraform_data" "vpc" {
  input = {
    environment = var.env_name
    cidr        = var.cidr
  }
}

resource "terraform_data" "subnet" {
  input = {
    vpc  = terraform_data.vpc.id
    cidr = cidrsubnet(var.cidr, 8, 1)
  }
}

output "id" {
  value = terraform_data.vpc.id
}

output "subnet_cidr" {
  value = terraform_data.subnet.output.cidr
}
