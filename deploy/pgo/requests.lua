-- wrk script for the PGO training run (deploy/pgo/train.sh): each request sent is the next of a
-- mix of the demo's requests, in turn. Tokens come from the environment (PATIENT_TOKEN,
-- DOCTOR_TOKEN, NURSE_TOKEN, RECEPTIONIST_TOKEN).
local mix = {
  { "GET", "/api/hospital/info" },
  { "GET", "/api/patients/p-1001/records", "PATIENT_TOKEN" },
  { "GET", "/api/patients/p-1001", "PATIENT_TOKEN" },
  { "GET", "/api/patients/p-1001", "RECEPTIONIST_TOKEN" },
  { "GET", "/api/patients/p-1002/records", "PATIENT_TOKEN" },
  { "GET", "/api/departments/cardiology/patients/p-1001/records", "DOCTOR_TOKEN" },
  { "GET", "/api/departments/cardiology/patients/p-1001/records", "NURSE_TOKEN" },
  { "GET", "/api/departments/dermatology/patients/p-1002/records", "DOCTOR_TOKEN" },
  { "PUT", "/api/departments/cardiology/patients/p-1001", "DOCTOR_TOKEN",
    '{"name":"Li Wei","id_number":"110101199003079999","phone":"13800001111"}' },
  { "POST", "/api/patients/p-1001/consultations/c-2001/messages", "PATIENT_TOKEN",
    '{"author":"patient","text":"The tightness is gone today."}' },
  { "GET", "/api/patients/p-1001/appointments", "RECEPTIONIST_TOKEN" },
  { "GET", "/api/patients/p-1001/records" },
  { "GET", "/api/patients/%2e%2e/p-1001" },
}

local requests = {}
local next_index = 1

function init(args)
  for i, r in ipairs(mix) do
    local headers = {}
    if r[3] then headers["authorization"] = "Bearer " .. os.getenv(r[3]) end
    if r[4] then headers["content-type"] = "application/json" end
    requests[i] = wrk.format(r[1], r[2], headers, r[4])
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
