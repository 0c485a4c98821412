-- Argo CD health check for tftj.dev/TFTrainingJob (resource.customizations.health.tftj.dev_TFTrainingJob).
-- Reads the global `obj`; returns {status = ..., message = ...}.
--   Healthy      phase Succeeded
--   Degraded     phase Failed, or a spec the operator refused (condition Stalled, reason InvalidSpec)
--   Suspended    phase Suspended
--   Progressing  phase Pending, Running or Restarting, and a job the operator has not yet
--                observed (no status, or status.observedGeneration behind metadata.generation)
-- Tested with a real Lua runtime over statuses captured from the operator (tests/unit/test_gitops.py).

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the tftj operator to observe the job"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the tftj operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
local phase = status.phase
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = said(condition(status, "Failed"), "Training failed")
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(condition(status, "Created"), said(stalled, "The spec is invalid"))
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = said(condition(status, "Succeeded"), "Training succeeded")
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = said(condition(status, "Suspended"), "The job is suspended")
else
  hs.status = "Progressing"
  local current = phase and condition(status, phase)
  hs.message = said(current, "Phase " .. tostring(phase or "unknown"))
end
return hs
